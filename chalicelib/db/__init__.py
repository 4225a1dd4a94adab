from chalicelib.db.database import Database

__all__ = ["Database"]

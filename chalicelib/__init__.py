"""zemeow's shared library: everything the Lambdas import (and the runner reuses).

Never imports neonize: the Lambda package must stay small.
"""
__version__ = "0.1.0"

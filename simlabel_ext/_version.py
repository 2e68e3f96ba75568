"""The version of simlabel (kept here so that modules inside the package can name it without importing it all)."""
__version__ = "0.1.0"

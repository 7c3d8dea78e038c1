"""Container runtimes behind one CRI-shaped interface (base.py): runc, process, fake."""

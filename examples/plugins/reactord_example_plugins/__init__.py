"""Example reactord plugins: see certs.py, and README.md for how to install and use them."""

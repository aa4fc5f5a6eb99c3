"""Issue 18's security tests: file access, the admin API's perimeter, linear-time
matching, bounded consumers and connection fairness. Runnable alone:
``python -m pytest tests/security``."""

"""docingest benchmarks: ``python -m bench [--quick] [NAME...]`` prints one table of figures."""

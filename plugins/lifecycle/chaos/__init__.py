"""The chaos suite's machinery (``make chaos``): stages run without Airflow, an outage proxy."""

"""Operator views (issue 14): the read model behind the "Returns" pages of the Airflow UI."""

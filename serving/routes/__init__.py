"""HTTP routes, kept thin: parameters in, :class:`serving.query.QueryService` does the work."""

"""PyFlink jobs. Thin shims: parsing runs in Java (ParseEvent UDF), sketches in ``app.sketches``."""

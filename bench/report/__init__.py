"""The comparison report: statistics over seeds and test images (``stats``), tables and figures."""

"""One module per task: its metrics, evaluation report and prediction format."""

"""What makes a shipped prediction trustworthy: out-of-fold reliability, conformal intervals,
splice QC."""

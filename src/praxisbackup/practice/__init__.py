"""Knowledge of the practice's software: the CGM M1 PRO profile (essential items, variants),
open-file checks, the practice restore plan, the recovery key, sample practice data."""

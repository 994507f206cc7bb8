"""Example background jobs shipped with kaiwa (KAIWA_JOBS_EXAMPLES): small scripts the
job runner (agent/jobs.py) starts as `python <script> ...`, never through a shell."""

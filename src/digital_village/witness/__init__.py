"""A checkpoint witness (C2SP tlog-witness): cosigns a log's checkpoints that extend the last one
it cosigned, and refuses any other view of that log. Runs apart from the log (``dv witness``)."""

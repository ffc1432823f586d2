"""Scale-out of judging beyond one process (Ray). Needs the ``ray`` extra."""

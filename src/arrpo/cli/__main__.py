"""``python -m arrpo.cli`` (and ``accelerate launch -m arrpo.cli train ...``) runs ``arrpo``."""

from arrpo.cli import main

main()

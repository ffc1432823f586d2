"""The human side of ARR in the browser.

* ``arrpo label``: people label seed pairs one at a time (:mod:`arrpo.annotate.label_app`); every
  answer goes to an append-only log (:mod:`arrpo.annotate.labels`) from which the seed file that
  ``arrpo rubric learn`` reads is rebuilt after each answer.
* ``arrpo review``: people browse an ``arrpo eval`` run and pick guide exemplars
  (:mod:`arrpo.annotate.review`, :mod:`arrpo.annotate.review_app`).

The web pieces need the ``serve`` extra (FastAPI, uvicorn); the data modules do not.
"""

"""Training the model organism: ``make models`` (``ropebook models``).

  curriculum  one training run: a length curriculum over language modelling and retrieval drills
  recipes     every checkpoint the book needs, how it is trained, and its gate
  make        train the whole table in parallel processes, parents first, then check the gates

Not here: loading a trained checkpoint (``ropelib.models``).
"""

"""One module per chapter: ``chNN_name`` does the work of the notebook ``chapters/NN_name.ipynb``.

Each module declares

- ``SPEC``: a :class:`pretraining.book.specs.ChapterSpec` (the claim, every parameter with its default
  and help, the cross-parameter rules);
- ``start(namespace) -> Chapter``: checks the notebook's parameters (its first call);
- ``run(ch) -> Result``: all heavy work, through the artifact cache;
- one function per section of the notebook, gluing its numbers and figures (``ch.glue``, ``ch.figure``:
  the notebook's markdown places them, numbered and captioned, with ``{glue:text}`` and
  ``{glue:figure}``) and showing its tables; none returns a value, so no cell prints a raw result;
- ``claim_parts(ch, res)``: each part of the claim tested on the numbers (:mod:`pretraining.book.claims`);
- ``finish(ch, res)``: the parts, the verdict, the key result (glued as ``key_result`` for the box
  under the claim) and the results file.
"""

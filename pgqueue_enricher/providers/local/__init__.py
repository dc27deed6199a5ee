"""The offline provider (ENRICHER_PROVIDER=local): OCR plus rules instead of Gemini and Voyage.

It exists so the demo and the tests run with no keys and no network, and so an operator can
try the pipeline before buying API access. It writes the same markdown sections as the
Gemini path; the `## Notes` section says plainly that no vision model was involved.

Modules by role: `ocr` (engine, decode, detection and recognition), `repair` (word spaces and
misread characters), `layout` (lines, tables, title), `rules` (dimensions, callouts,
cross-references), `analysis` (one page through the rules), `markdown`, `describer`,
`lexical` (the embedder). Only `ocr` and `repair` import the optional `local` extra
(rapidocr-onnxruntime, numpy, Pillow), and only when a describer opens, so `LexicalEmbedder`
and the rest of the package work without it.
"""

from pgqueue_enricher.providers.local.describer import LocalDescriber
from pgqueue_enricher.providers.local.lexical import LexicalEmbedder, lexical_vector

__all__ = ["LexicalEmbedder", "LocalDescriber", "lexical_vector"]

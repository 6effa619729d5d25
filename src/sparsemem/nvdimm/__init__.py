"""libnvdimm model: on-media info-blocks and (later) pfn/dax namespaces.

Submodules are imported explicitly (e.g. ``from sparsemem.nvdimm import infoblock``); this
package initialiser deliberately imports nothing so that it stays cheap.
"""

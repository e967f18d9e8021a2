"""No import circle anywhere in hfs_core, type-only imports included (issue 20).

import-linter's contracts (run by CI) keep the layers and forbid cycles among siblings; this
test closes the rest: for every import a -> b inside hfs_core, b never leads back to a.
"""

from __future__ import annotations

import grimp


def test_no_module_of_hfs_core_imports_itself_back() -> None:
    graph = grimp.build_graph("hfs_core", include_external_packages=False, exclude_type_checking_imports=False)
    modules = {m for m in graph.modules if m == "hfs_core" or m.startswith("hfs_core.")}
    circles = []
    for importer in sorted(modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & modules):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                circles.append(" -> ".join((importer, *back)))
    assert len(modules) > 50 and not circles, "\n".join(circles)

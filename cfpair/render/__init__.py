"""Bird's-eye renders of pairs, grid overviews and the self-contained HTML report."""

"""SMS in (keyword router) and out (providers behind one interface)."""

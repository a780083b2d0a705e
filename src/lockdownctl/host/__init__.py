"""One reader per kernel interface; each takes a :class:`~lockdownctl.root.Root`."""

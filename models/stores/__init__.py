"""The stores: the only code that moves an AIJob's or a Pipeline's status; a terminal row never changes."""

"""The ground floor: every error kind, the enums of the config schema, the ARTeFACT class table,
the file, tag and environment-variable names that several layers share, and the typed reason a
run stopped early. Plain Python: it imports nothing from seg58 and no third-party package, so
every other layer may import it."""

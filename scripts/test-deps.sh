# Sourced by scripts/test.sh: installs what the tests need outside cargo,
# only when it is missing, so a second run costs nothing.
# (Nothing yet: the core tests need only cargo.)
true

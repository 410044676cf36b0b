# Finds the system libraries Sluice links, each from a Debian 12 package.
# A missing one stops the configure step naming the package to install.

find_package(nng CONFIG QUIET)
if(NOT nng_FOUND)
  message(FATAL_ERROR "NNG not found: install it with `apt-get install libnng-dev`"
                      " (or run scripts/setup, which installs every dependency)")
endif()

find_package(SQLite3 QUIET)
if(NOT SQLite3_FOUND)
  message(FATAL_ERROR "SQLite3 not found: install it with `apt-get install libsqlite3-dev`")
endif()

find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install it with `apt-get install pkg-config`")
endif()
pkg_check_modules(YAML QUIET IMPORTED_TARGET yaml-0.1)
if(NOT YAML_FOUND)
  message(FATAL_ERROR "libyaml not found: install it with `apt-get install libyaml-dev`")
endif()

find_package(PostgreSQL QUIET)
if(NOT PostgreSQL_FOUND)
  message(FATAL_ERROR "libpq not found: install it with `apt-get install libpq-dev`")
endif()

find_package(Threads REQUIRED)

# Install layout and the Debian package (CPack DEB generator).
#
# Why CPack rather than a debian/ directory: the install rules below are the
# one description of where every file goes, for `cmake --install` and for the
# .deb alike, and `cpack -G DEB` builds the package from any build tree
# without debhelper. What debhelper would add by itself is done here: the
# maintainer scripts (packaging/debian/), compressed man pages and changelog,
# md5sums, stripped binary, dependencies from dpkg-shlibdeps. lintian checks
# the result (scripts/build-deb.sh).
#
# Layout (with CMAKE_INSTALL_PREFIX=/usr, what scripts/build-deb.sh uses):
#   /usr/sbin/mailgate                      the daemon and its subcommands
#   /lib/systemd/system/mailgate.service    the unit (Debian 12 path)
#   /etc/mailgate/mailgate.yaml             conffile: the example config in dry-run
#   /usr/share/man/man8/mailgate.8.gz, man5/mailgate.yaml.5.gz
#   /usr/share/doc/mailgate/{README.Debian,copyright,changelog.gz,mailgate.example.yaml}
#   /usr/share/doc/mailgate/examples/{mailgate.json,alerts.yml}   Grafana, Prometheus
# The unit runs /usr/sbin/mailgate with /etc/mailgate/mailgate.yaml, so the
# default prefix is /usr (not /usr/local) and the config always goes to /etc.
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install prefix (Debian layout)" FORCE)
endif()
include(GNUInstallDirs)

find_program(MAILGATE_SCDOC scdoc)
find_program(MAILGATE_GZIP gzip REQUIRED)

# Man pages: scdoc sources in man/, built into build/man/ (plain for
# `man -l`, gzip -9n for the package: -n keeps the build reproducible).
set(MAILGATE_MAN_PAGES mailgate.8 mailgate.yaml.5)
set(MAILGATE_MAN_OUTPUTS)
if(MAILGATE_SCDOC)
  foreach(page ${MAILGATE_MAN_PAGES})
    set(out ${CMAKE_BINARY_DIR}/man/${page})
    add_custom_command(
      OUTPUT ${out} ${out}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND sh -c "'${MAILGATE_SCDOC}' < '${PROJECT_SOURCE_DIR}/man/${page}.scd' > '${out}'"
      COMMAND sh -c "'${MAILGATE_GZIP}' -9nc '${out}' > '${out}.gz'"
      DEPENDS ${PROJECT_SOURCE_DIR}/man/${page}.scd
      COMMENT "scdoc man/${page}.scd"
      VERBATIM)
    list(APPEND MAILGATE_MAN_OUTPUTS ${out} ${out}.gz)
  endforeach()
  add_custom_target(mailgate_man ALL DEPENDS ${MAILGATE_MAN_OUTPUTS})
  install(FILES ${CMAKE_BINARY_DIR}/man/mailgate.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
  install(FILES ${CMAKE_BINARY_DIR}/man/mailgate.yaml.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
else()
  message(WARNING "scdoc not found: man pages are not built (apt-get install scdoc)")
endif()

# The packaged config is the documented example with the state where the
# unit's StateDirectory= puts it. It stays in dry-run: installing the package
# never sends anything to Inbenta.
file(READ ${PROJECT_SOURCE_DIR}/config/mailgate.example.yaml mailgate_example_config)
set(mailgate_example_spool "spool_dir: /tmp/mailgate-spool")
string(FIND "${mailgate_example_config}" "${mailgate_example_spool}" mailgate_spool_at)
string(FIND "${mailgate_example_config}" "  mode: dry-run\n" mailgate_dry_run_at)
if(mailgate_spool_at EQUAL -1 OR mailgate_dry_run_at EQUAL -1)
  message(FATAL_ERROR "config/mailgate.example.yaml no longer has '${mailgate_example_spool}' "
                      "and 'mode: dry-run': update cmake/packaging.cmake, which derives the packaged config from it")
endif()
string(REPLACE "${mailgate_example_spool}" "spool_dir: /var/lib/mailgate"
       mailgate_packaged_config "${mailgate_example_config}")
file(WRITE ${CMAKE_BINARY_DIR}/packaging/mailgate.yaml "${mailgate_packaged_config}")

install(TARGETS mailgate RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/systemd/mailgate.service DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_BINARY_DIR}/packaging/mailgate.yaml DESTINATION /etc/mailgate)

# Debian's doc directory: the credentials note, the copyright file, the
# changelog (native package: changelog.gz) and the full reference config.
set(mailgate_docdir ${CMAKE_INSTALL_DATAROOTDIR}/doc/mailgate)
configure_file(${PROJECT_SOURCE_DIR}/packaging/debian/changelog.in ${CMAKE_BINARY_DIR}/packaging/changelog @ONLY)
execute_process(COMMAND sh -c "'${MAILGATE_GZIP}' -9nc '${CMAKE_BINARY_DIR}/packaging/changelog' > '${CMAKE_BINARY_DIR}/packaging/changelog.gz'"
                COMMAND_ERROR_IS_FATAL ANY)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/README.Debian
              ${PROJECT_SOURCE_DIR}/packaging/debian/copyright
              ${CMAKE_BINARY_DIR}/packaging/changelog.gz
              ${PROJECT_SOURCE_DIR}/config/mailgate.example.yaml
        DESTINATION ${mailgate_docdir})
# The dashboard and alerting rules, for the admin's Grafana and Prometheus.
install(FILES ${PROJECT_SOURCE_DIR}/contrib/grafana/mailgate.json
              ${PROJECT_SOURCE_DIR}/contrib/prometheus/alerts.yml
        DESTINATION ${mailgate_docdir}/examples)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mailgate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "mailgate maintainers <mailgate@inbenta.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "email to Inbenta Messenger tickets (SMTP, LMTP, IMAP)")
# CPack writes the summary as the synopsis, then these lines, each indented
# and an empty line as " .".
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "mailgate receives mail from an MTA (SMTP or LMTP relay, or a pipe
transport) or imports it from IMAP mailboxes, keeps every message in a
durable spool and turns each into one ticket of the Inbenta Messenger API:
the sender becomes a Messenger user, attachments and inline images become
uploaded media.

The package installs a hardened systemd unit and a configuration in
dry-run mode: tickets are written as JSON files under /var/lib/mailgate
until the API credentials are configured (see README.Debian).")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://www.inbenta.com/")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
configure_file(${PROJECT_SOURCE_DIR}/packaging/debian/conffiles ${CMAKE_BINARY_DIR}/packaging/control/conffiles COPYONLY)
foreach(script postinst prerm postrm)
  configure_file(${PROJECT_SOURCE_DIR}/packaging/debian/${script} ${CMAKE_BINARY_DIR}/packaging/control/${script}
                 COPYONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/packaging/control/conffiles
    ${CMAKE_BINARY_DIR}/packaging/control/postinst
    ${CMAKE_BINARY_DIR}/packaging/control/prerm
    ${CMAKE_BINARY_DIR}/packaging/control/postrm)
# Only the daemon and what it needs: no bench or test targets.
set(CPACK_INSTALL_CMAKE_PROJECTS "${CMAKE_BINARY_DIR};mailgate;ALL;/")
include(CPack)

# SPDX-License-Identifier: MIT
# install.cmake - the installable libsectorfs: static and shared libraries,
# headers, a pkg-config file and the example, plus the tests that prove an
# installed copy works (the example, built in-tree and against the install).
#
# Included from the top-level CMakeLists.txt once SECTORFS_SOURCES is set.
#
# Design notes:
#   - One PIC object library feeds both libraries, so every source is
#     compiled once; position-independent code costs the static library
#     next to nothing on x86-64.
#   - The project compiles with -fvisibility=hidden; these targets use
#     -fvisibility=default like sfs_plain, so every public function is
#     visible.  A linker version script then keeps only the public
#     prefixes (those of sectorfs.h and sectorfs/*.h) in the shared
#     library's dynamic symbol table: internal helpers such as inode_get()
#     or os_malloc() would otherwise be exported, and a program defining a
#     function of the same name would silently replace them inside the
#     library (ELF interposition).
#   - sectorfs.pc is written at install time, not configure time, so that
#     `cmake --install --prefix P` (and DESTDIR) get a file naming P.

set(SECTORFS_PUBLIC_PREFIXES sfs_ sp_ sv_ sm_ lk_)

add_library(sectorfs_objects OBJECT ${SECTORFS_SOURCES})
set_target_properties(sectorfs_objects PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(sectorfs_objects
  PUBLIC ${PROJECT_SOURCE_DIR}/include
  PRIVATE ${PROJECT_SOURCE_DIR}/os ${PROJECT_SOURCE_DIR}/engine ${PROJECT_SOURCE_DIR}/core)
target_compile_options(sectorfs_objects PRIVATE -fvisibility=default)
target_link_libraries(sectorfs_objects PUBLIC Threads::Threads)

add_library(sectorfs_static STATIC $<TARGET_OBJECTS:sectorfs_objects>)
add_library(sectorfs_shared SHARED $<TARGET_OBJECTS:sectorfs_objects>)
foreach(t sectorfs_static sectorfs_shared)
  target_include_directories(${t} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${t} PUBLIC Threads::Threads)
  set_target_properties(${t} PROPERTIES OUTPUT_NAME sectorfs)
endforeach()

set(sectorfs_map "{\n  global:\n")
foreach(p ${SECTORFS_PUBLIC_PREFIXES})
  string(APPEND sectorfs_map "    ${p}*;\n")
endforeach()
string(APPEND sectorfs_map "  local:\n    *;\n};\n")
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/sectorfs.map "${sectorfs_map}")
set_target_properties(sectorfs_shared PROPERTIES
  VERSION ${PROJECT_VERSION}
  SOVERSION 0
  LINK_DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/sectorfs.map)
target_link_options(sectorfs_shared PRIVATE
  -Wl,--version-script=${CMAKE_CURRENT_BINARY_DIR}/sectorfs.map -Wl,--no-undefined)

# ---- installation ----
install(TARGETS sectorfs_static sectorfs_shared
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/sectorfs.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/sectorfs DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_SOURCE_DIR}/examples/embed.c DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# The pkg-config file: a template now, filled in by a script at install
# time, when the prefix is known.  libdir and includedir stay relative to
# ${prefix} when they can, as pkg-config's --define-prefix expects.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/sectorfs.pc.in [=[
prefix=@SFS_PC_PREFIX@
exec_prefix=${prefix}
libdir=@SFS_PC_LIBDIR@
includedir=@SFS_PC_INCLUDEDIR@

Name: sectorfs
Description: A POSIX filesystem in memory, as a C library
Version: @PROJECT_VERSION@
Libs: -L${libdir} -lsectorfs
Libs.private: -lpthread
Cflags: -I${includedir}
]=])
# @VAR@ is filled in now, ${VAR} when the script runs.
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/sectorfs_pc_install.cmake @ONLY CONTENT [=[
set(PROJECT_VERSION "@PROJECT_VERSION@")
set(SFS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(rel_LIBDIR "@CMAKE_INSTALL_LIBDIR@")
set(rel_INCLUDEDIR "@CMAKE_INSTALL_INCLUDEDIR@")
foreach(d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${rel_${d}}")
    set(SFS_PC_${d} "${rel_${d}}")
    set(full_${d} "${rel_${d}}")
  else()
    set(SFS_PC_${d} "\${prefix}/${rel_${d}}")
    set(full_${d} "${CMAKE_INSTALL_PREFIX}/${rel_${d}}")
  endif()
endforeach()
configure_file("@CMAKE_CURRENT_BINARY_DIR@/sectorfs.pc.in"
               "@CMAKE_CURRENT_BINARY_DIR@/sectorfs.pc" @ONLY)
file(INSTALL DESTINATION "${full_LIBDIR}/pkgconfig" TYPE FILE
     FILES "@CMAKE_CURRENT_BINARY_DIR@/sectorfs.pc")
]=])
install(SCRIPT ${CMAKE_CURRENT_BINARY_DIR}/sectorfs_pc_install.cmake)

# ---- the example, and tests of the installation ----
add_executable(example_embed ${PROJECT_SOURCE_DIR}/examples/embed.c)
target_link_libraries(example_embed PRIVATE sectorfs_static)

if(BUILD_TESTING)
  add_test(NAME example_embed COMMAND example_embed)
  set_tests_properties(example_embed PROPERTIES TIMEOUT 120 LABELS "plain;example")

  find_program(SECTORFS_PKG_CONFIG pkg-config)
  if(SECTORFS_PKG_CONFIG)
    add_test(NAME install_pkgconfig
      COMMAND sh ${PROJECT_SOURCE_DIR}/tests/install_test.sh
              ${CMAKE_BINARY_DIR} ${CMAKE_COMMAND} ${CMAKE_C_COMPILER})
    set_tests_properties(install_pkgconfig PROPERTIES TIMEOUT 300 LABELS "plain;install")
  else()
    message(STATUS "pkg-config not found: the install_pkgconfig test is skipped")
  endif()
endif()

# ---- the command's other files: man pages, bash completion, systemd unit ----
# (the daemon and sectorfs(8) are installed beside its target).  The unit
# names the daemon by its installed path; its directory is relative to the
# prefix unless given (Debian's packaging gives /lib/systemd/system):
# systemd reads /usr/local/lib/systemd/system too, for ./install.sh.
set(SECTORFS_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "where sectorfs@.service goes (relative: under the prefix)")
set(SECTORFS_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
configure_file(${PROJECT_SOURCE_DIR}/dist/sectorfs@.service.in
               ${CMAKE_CURRENT_BINARY_DIR}/sectorfs@.service @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/sectorfs@.service
        DESTINATION ${SECTORFS_SYSTEMD_UNITDIR})
install(FILES ${PROJECT_SOURCE_DIR}/doc/sectorfs.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
install(FILES ${PROJECT_SOURCE_DIR}/dist/sectorfs.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME sectorfs)

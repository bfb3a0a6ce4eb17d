# Box2D 2.3 for rltrain._box2d: the C++ sources inside the box2d-py 2.3.8 sdist (the library pybox2d, and so
# gymnasium's LunarLander, runs), compiled into a static library with hidden symbols. No system package.
#
# Where the sources come from, first match wins:
#   1. RLTRAIN_BOX2D_SOURCE (CMake cache or environment variable): an unpacked box2d-py 2.3.8, i.e. the folder
#      holding Box2D/Box2D.h, for offline builds;
#   2. a copy staged by an earlier configure in this build tree;
#   3. `python -m pip download --no-deps --no-binary :all: box2d-py==2.3.8` into the build tree, sha256-checked.
# The sources are staged (copied) into the build tree, never modified where they came from. Staging makes two
# changes: Box2D's global GJK/TOI statistics counters become thread_local, so worlds stepped on different threads
# never race on them (diagnostics nobody reads here; per thread they stay correct), and b2Assert throws a C++
# exception instead of setting a Python error (pybox2d's SWIG convention).
#
# Defines rltrain_box2d_available(<out_var>) and, when the sources were found, the target rltrain_box2d.

set(RLTRAIN_BOX2D_SDIST_VERSION "2.3.8")
set(RLTRAIN_BOX2D_SDIST_SHA256 "bdacfbbc56079bb317548efe49d3d5a86646885cc27f4a2ee97e4b2960921ab7")
set(RLTRAIN_BOX2D_SOURCE "$ENV{RLTRAIN_BOX2D_SOURCE}" CACHE PATH
    "An unpacked box2d-py ${RLTRAIN_BOX2D_SDIST_VERSION} (the folder holding Box2D/Box2D.h); empty: download it")

set(_b2_stage "${CMAKE_BINARY_DIR}/box2d-${RLTRAIN_BOX2D_SDIST_VERSION}")
set(_b2_subdirs Common Collision Collision/Shapes Dynamics Dynamics/Contacts Dynamics/Joints)

# Downloads and unpacks the sdist into the build tree; sets <out_var> to the unpacked root or to "" (and
# <why_var> to the reason) when it cannot be had.
function(_rltrain_box2d_download out_var why_var)
  set(${out_var} "" PARENT_SCOPE)
  set(dl "${CMAKE_BINARY_DIR}/box2d-download")
  set(tarball "${dl}/box2d-py-${RLTRAIN_BOX2D_SDIST_VERSION}.tar.gz")
  if(NOT EXISTS "${tarball}")
    message(STATUS "Box2D: downloading the box2d-py ${RLTRAIN_BOX2D_SDIST_VERSION} sdist with pip")
    execute_process(
      COMMAND "${Python_EXECUTABLE}" -m pip download --no-deps --no-binary :all: --disable-pip-version-check
              --timeout 20 --retries 2 -d "${dl}" "box2d-py==${RLTRAIN_BOX2D_SDIST_VERSION}"
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 300)
    if(NOT rc EQUAL 0 OR NOT EXISTS "${tarball}")
      string(STRIP "${err}" err)
      set(${why_var} "pip download of box2d-py==${RLTRAIN_BOX2D_SDIST_VERSION} failed (${rc}): ${err}" PARENT_SCOPE)
      return()
    endif()
  endif()
  file(SHA256 "${tarball}" sha)
  if(NOT sha STREQUAL RLTRAIN_BOX2D_SDIST_SHA256)
    file(REMOVE "${tarball}")
    set(${why_var} "box2d-py sdist sha256 ${sha} != expected ${RLTRAIN_BOX2D_SDIST_SHA256}" PARENT_SCOPE)
    return()
  endif()
  set(unpacked "${dl}/unpacked")
  file(REMOVE_RECURSE "${unpacked}")
  set(patterns "box2d-py-${RLTRAIN_BOX2D_SDIST_VERSION}/Box2D/Box2D.h"
               "box2d-py-${RLTRAIN_BOX2D_SDIST_VERSION}/Box2D/Box2D-License.txt")
  foreach(sub IN LISTS _b2_subdirs)
    list(APPEND patterns "box2d-py-${RLTRAIN_BOX2D_SDIST_VERSION}/Box2D/${sub}/*")
  endforeach()
  file(ARCHIVE_EXTRACT INPUT "${tarball}" DESTINATION "${unpacked}" PATTERNS ${patterns})
  set(${out_var} "${unpacked}/box2d-py-${RLTRAIN_BOX2D_SDIST_VERSION}" PARENT_SCOPE)
endfunction()

# Replaces the line(s) <old> (at a line start) by <new> in the staged <file>; on a miss sets <err_var> to why.
function(_rltrain_box2d_edit file old new err_var)
  file(READ "${_b2_stage}/Box2D/${file}" text)
  string(FIND "${text}" "\n${old}" at)
  if(at EQUAL -1)
    set(${err_var} "Box2D/${file} lacks the expected text '${old}'" PARENT_SCOPE)
    return()
  endif()
  string(REPLACE "\n${old}" "\n${new}" text "${text}")
  file(WRITE "${_b2_stage}/Box2D/${file}" "${text}")
endfunction()

# Copies Box2D/{Box2D.h,License,<subdirs>/*.{h,cpp}} from <root> into the stage and edits it (below); sets
# <why_var> (and stages nothing) when <root> is not Box2D 2.3 or an edit does not apply.
function(_rltrain_box2d_stage root why_var)
  set(${why_var} "" PARENT_SCOPE)
  if(NOT EXISTS "${root}/Box2D/Box2D.h" OR NOT EXISTS "${root}/Box2D/Common/b2Settings.cpp")
    set(${why_var} "${root} does not hold Box2D/Box2D.h and Box2D/Common/b2Settings.cpp" PARENT_SCOPE)
    return()
  endif()
  file(READ "${root}/Box2D/Common/b2Settings.cpp" settings)
  if(NOT settings MATCHES "b2_version = {2, 3,")
    set(${why_var} "${root} is not Box2D 2.3 (b2_version in Common/b2Settings.cpp)" PARENT_SCOPE)
    return()
  endif()
  file(REMOVE_RECURSE "${_b2_stage}")
  file(COPY "${root}/Box2D/Box2D.h" "${root}/Box2D/Box2D-License.txt" DESTINATION "${_b2_stage}/Box2D")
  foreach(sub IN LISTS _b2_subdirs)
    file(GLOB files "${root}/Box2D/${sub}/*.h" "${root}/Box2D/${sub}/*.cpp")
    file(COPY ${files} DESTINATION "${_b2_stage}/Box2D/${sub}")
  endforeach()
  # Two edits, each checked to apply exactly (an unexpected variant of the sources fails here, not later):
  # - the statistics counters (file-scope definitions, declared nowhere else in the C++) become thread_local;
  # - pybox2d's b2Assert sets a Python error (Python.h) and throws; here it throws std::logic_error, which the
  #   batcher carries to the caller as a Python exception, and the library needs no Python headers.
  set(assert_py [=[#include <Python.h>
class b2AssertException {};
#define b2Assert(A) if (!(A)) { PyErr_SetString(PyExc_AssertionError, #A); throw b2AssertException(); }]=])
  set(assert_cpp [=[#include <stdexcept>
#define b2Assert(A) if (!(A)) { throw std::logic_error("Box2D assertion failed: " #A); }]=])
  set(err "")
  _rltrain_box2d_edit("Common/b2Settings.h" "${assert_py}" "${assert_cpp}" err)
  foreach(line "int32 b2_gjkCalls, b2_gjkIters, b2_gjkMaxIters;" "float32 b2_toiTime, b2_toiMaxTime;"
               "int32 b2_toiCalls, b2_toiIters, b2_toiMaxIters;" "int32 b2_toiRootIters, b2_toiMaxRootIters;")
    if(line MATCHES "^int32 b2_gjk")
      _rltrain_box2d_edit("Collision/b2Distance.cpp" "${line}" "thread_local ${line}" err)
    else()
      _rltrain_box2d_edit("Collision/b2TimeOfImpact.cpp" "${line}" "thread_local ${line}" err)
    endif()
  endforeach()
  if(err)
    set(${why_var} "${root} is an unexpected Box2D 2.3 variant: ${err}" PARENT_SCOPE)
    file(REMOVE_RECURSE "${_b2_stage}")
    return()
  endif()
  file(WRITE "${_b2_stage}/.staged-from" "${root}")
endfunction()

function(rltrain_box2d_available out_var)
  set(${out_var} FALSE PARENT_SCOPE)
  set(why "")
  if(RLTRAIN_BOX2D_SOURCE)
    get_filename_component(root "${RLTRAIN_BOX2D_SOURCE}" ABSOLUTE)
    set(staged_from "")
    if(EXISTS "${_b2_stage}/.staged-from")
      file(READ "${_b2_stage}/.staged-from" staged_from)
    endif()
    if(NOT staged_from STREQUAL root)
      _rltrain_box2d_stage("${root}" why)
    endif()
  elseif(NOT EXISTS "${_b2_stage}/.staged-from")
    _rltrain_box2d_download(root why)
    if(root)
      _rltrain_box2d_stage("${root}" why)
    endif()
  endif()
  if(why OR NOT EXISTS "${_b2_stage}/.staged-from")
    set(RLTRAIN_BOX2D_UNAVAILABLE "${why}" PARENT_SCOPE)
    return()
  endif()

  set(sources "")
  foreach(sub IN LISTS _b2_subdirs)
    file(GLOB files "${_b2_stage}/Box2D/${sub}/*.cpp")
    list(APPEND sources ${files})
  endforeach()
  list(LENGTH sources n)
  message(STATUS "Box2D: ${n} sources of Box2D 2.3 staged in ${_b2_stage}")
  add_library(rltrain_box2d STATIC ${sources})
  # SYSTEM: Box2D's headers do not take part in rltrain's warning flags (or -Werror).
  target_include_directories(rltrain_box2d SYSTEM PUBLIC "${_b2_stage}")
  set_target_properties(rltrain_box2d PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_VISIBILITY_PRESET hidden
                                                 VISIBILITY_INLINES_HIDDEN ON)
  # pybox2d's own flags: the compiler's defaults for floating point (no -ffast-math, no -ffp-contract override),
  # warnings off (third-party code).
  if(MSVC)
    target_compile_options(rltrain_box2d PRIVATE /w)
  else()
    target_compile_options(rltrain_box2d PRIVATE -w)
  endif()
  rltrain_sanitizer_options(rltrain_box2d)
  set(${out_var} TRUE PARENT_SCOPE)
endfunction()

/*
 * extension/core/cpp_only.hpp
 *
 * Included last by every C++-regime file: fails the build if postgres.h slipped in, so the pure
 * logic under extension/core/ and protocol/ keeps compiling (and unit-testing) without a server.
 */
#pragma once

#ifdef PG_VERSION_NUM
static_assert(false, "C++-regime file includes postgres.h: move the backend call to extension/src/");
#endif

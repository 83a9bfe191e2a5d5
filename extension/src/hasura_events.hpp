/*
 * extension/src/hasura_events.hpp
 *
 * Declarations shared by the Postgres-regime files of the module (capture, API helpers, worker).
 * Include after postgres.h.
 */
#pragma once

#ifndef PG_VERSION_NUM
#error "include postgres.h before hasura_events.hpp"
#endif

/* module.cpp */
extern bool hasura_events_preloaded;
/* a new time-ordered event or invocation id (UUID version 7, as text) */
extern "C" text *hasura_events_new_id(void);

/* wake.cpp: remember that this transaction recorded events; the worker of this database is woken
 * when (and only if) the transaction commits. */
extern void hasura_events_note_events_recorded(void);
extern void hasura_events_shmem_init(void);

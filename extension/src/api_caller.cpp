/*
 * extension/src/api_caller.cpp
 *
 * The entry of the API functions that change the catalog, and the role they act for.
 *
 * hasura_events_admin has no INSERT, UPDATE or DELETE on the catalog: the functions that change
 * it run with the privileges of the extension's owner (SECURITY DEFINER), and each checks that
 * the role calling it owns the table of the trigger it touches. Inside a SECURITY DEFINER
 * function current_user is the owner and session_user is the login role (not the role a SET ROLE
 * or an enclosing SECURITY DEFINER function made current), so neither names the caller. Hence
 * the split: a public function such as hasura_events.create_event_trigger(jsonb) is this C entry,
 * SECURITY INVOKER, so that GetUserId() here is the caller as Postgres's own privilege checks see
 * it; it records that role and calls the implementation of the same name with a leading "_" and
 * the same argument types (hasura_events._create_event_trigger(jsonb), SECURITY DEFINER, not
 * executable by hasura_events_admin); hasura_events._caller() returns the recorded role to it.
 * An implementation called by the extension's owner from inside another implementation keeps the
 * outer caller; called directly by its owner (or a superuser), the caller is that role.
 */
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

#include "hasura_events.hpp"

/* the role the running implementation acts for, and the role it runs as (its owner); invalid
 * outside any implementation */
static Oid api_caller = InvalidOid;
static Oid api_runs_as = InvalidOid;

struct ApiEntry {
	FmgrInfo impl;
	Oid impl_owner;
};

/* current_caller: the role a call made now acts for */
static Oid
current_caller(void)
{
	Oid me = GetUserId();
	if (OidIsValid(api_caller) && me == api_runs_as)
		return api_caller;
	return me;
}

/* entry_of: the implementation behind the entry function being called, looked up once per call site */
static ApiEntry *
entry_of(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo->fn_extra != NULL)
		return (ApiEntry *)fcinfo->flinfo->fn_extra;
	HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "hasura_events: cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
	Form_pg_proc entry = (Form_pg_proc)GETSTRUCT(tup);
	char *schema = get_namespace_name(entry->pronamespace);
	char *impl_name = psprintf("_%s", NameStr(entry->proname));
	List *qualified = list_make2(makeString(schema), makeString(impl_name));
	Oid impl = LookupFuncName(qualified, entry->pronargs, entry->proargtypes.values, true);
	ReleaseSysCache(tup);
	if (!OidIsValid(impl))
		elog(ERROR, "hasura_events: %s.%s, the implementation of an API entry, is missing", schema, impl_name);

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(impl));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "hasura_events: cache lookup failed for function %u", impl);
	Form_pg_proc impl_form = (Form_pg_proc)GETSTRUCT(tup);
	/* an implementation that is not SECURITY DEFINER would run with the caller's privileges, and
	 * the one recorded for it would be a role the caller need not be */
	if (!impl_form->prosecdef)
		elog(ERROR, "hasura_events: %s.%s must be SECURITY DEFINER", schema, impl_name);
	Oid owner = impl_form->proowner;
	ReleaseSysCache(tup);

	ApiEntry *e = (ApiEntry *)MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ApiEntry));
	fmgr_info_cxt(impl, &e->impl, fcinfo->flinfo->fn_mcxt);
	e->impl_owner = owner;
	fcinfo->flinfo->fn_extra = e;
	return e;
}

extern "C" {
PG_FUNCTION_INFO_V1(hasura_events_api_call);
PG_FUNCTION_INFO_V1(hasura_events_caller);
}

/*
 * hasura_events_api_call: the C entry of an API function: calls its implementation with the
 * same arguments, the caller recorded for hasura_events._caller().
 */
PGDLLEXPORT Datum
hasura_events_api_call(PG_FUNCTION_ARGS)
{
	ApiEntry *e = entry_of(fcinfo);
	if (e->impl.fn_strict)
		for (int i = 0; i < fcinfo->nargs; i++)
			if (fcinfo->args[i].isnull)
				PG_RETURN_NULL();

	FunctionCallInfo inner = (FunctionCallInfo)palloc0(SizeForFunctionCallInfo(fcinfo->nargs));
	InitFunctionCallInfoData(*inner, &e->impl, fcinfo->nargs, fcinfo->fncollation, fcinfo->context, fcinfo->resultinfo);
	for (int i = 0; i < fcinfo->nargs; i++)
		inner->args[i] = fcinfo->args[i];

	Oid caller = current_caller();
	volatile Oid saved_caller = api_caller;
	volatile Oid saved_runs_as = api_runs_as;
	Datum result = (Datum)0;
	api_caller = caller;
	api_runs_as = e->impl_owner;
	PG_TRY();
	{
		result = FunctionCallInvoke(inner);
	}
	PG_FINALLY();
	{
		api_caller = saved_caller;
		api_runs_as = saved_runs_as;
	}
	PG_END_TRY();
	fcinfo->isnull = inner->isnull;
	return result;
}

/* hasura_events._caller(): the role an API call acts for (current_user outside the API). */
PGDLLEXPORT Datum
hasura_events_caller(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(current_caller());
}

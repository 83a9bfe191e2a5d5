/*
 * extension/src/capture.cpp
 *
 * The one trigger function behind every event trigger: hasura_events.capture(name, columns, payload).
 *
 * Normal triggers are AFTER ... FOR EACH STATEMENT with transition tables, so a statement that
 * changes N rows costs one trigger call and one INSERT of up to kFlushRows events at a time,
 * not N calls and N inserts. Triggers created with trigger_on_replication are FOR EACH ROW
 * (logical replication apply fires only row triggers) and go through the same row code.
 *
 * Row JSON comes from Postgres's own row_to_json, so values are rendered exactly as
 * to_jsonb/row_to_json render them; a payload column list is applied by projecting the row onto a
 * blessed tuple descriptor with just those columns. Two exceptions follow Hasura's trigger
 * function: PostGIS geometry and geography columns are rendered as ST_AsGeoJSON(col, 15, 4) (the
 * GeoJSON with the long CRS form), and with hasura_events.stringify_numeric_types bigint, numeric
 * and double precision columns as the JSON strings of their text. PostGIS's types are recognized
 * by name (PostGIS is optional: nothing here depends on it), for types that are not built in, with
 * the answer cached per type; a table of built-in types takes the same path as before.
 *
 * Wording: "event trigger" is Hasura's (a named webhook subscription); "pg trigger" is the
 * Postgres trigger object that fires for it.
 *
 * Postgres regime: plain data only, errors by ereport.
 */
#include <string_view>

#include "event_json.hpp"

extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "common/jsonapi.h"
#include "parser/parse_coerce.h"
#include "parser/parse_func.h"
#include "utils/numeric.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
}

#include "hasura_events.hpp"

using hasura_events::JsonText;

namespace {

/* Events are inserted in chunks: bounded memory for huge statements, few SPI calls. */
constexpr int kFlushRows = 1000;
constexpr Size kFlushBytes = 64 * 1024 * 1024;

struct StringInfoSink {
	StringInfo buf;
	void
	append(const char *data, size_t len)
	{
		appendBinaryStringInfo(buf, data, (int)len);
	}
};

/* A column list of an operation spec, resolved against the table's descriptor. */
struct ColumnSet {
	bool all;
	int count;
	AttrNumber *attnums;
};

/* How many attribute numbers a column set lists ("*": every attribute of desc, dropped ones too). */
int
column_set_size(const ColumnSet *cs, TupleDesc desc)
{
	return cs->all ? desc->natts : cs->count;
}

/* The i-th attribute number of a column set. */
AttrNumber
column_set_attnum(const ColumnSet *cs, int i)
{
	return cs->all ? (AttrNumber)(i + 1) : cs->attnums[i];
}

/*
 * How a column's value becomes JSON when the event is built as jsonb directly. The kinds are
 * Postgres's own categories of row_to_json (json_categorize_type), so the value is the one
 * jsonb_in(row_to_json(row)) would give: numbers, booleans, date/time strings in JSON's format,
 * embedded json/jsonb, and every other type as the string of its output function. Arrays,
 * composites and types with a cast to json have no kind here: a row with one of them goes
 * through row_to_json and jsonb_in, as text.
 */
enum class ValueKind : uint8 {
	Text, /* text, varchar, char(n): the string itself */
	Bool,
	Int,      /* int2/int4/int8: a numeric */
	Numeric,  /* numeric; NaN and the infinities are strings, as in row_to_json */
	Float,    /* float4/float8: the output text, as a numeric when it is a JSON number */
	DateTime, /* date, timestamp, timestamptz: JsonEncodeDateTime */
	Json,     /* json: parsed */
	Jsonb,    /* jsonb: embedded */
	Output,   /* any other type: the string of its output function */
	/* Hasura's renderings (is_hasura_rendering), also applied on the row_to_json route */
	GeoJson,     /* PostGIS geometry/geography: output is ST_AsGeoJSON(value, 15, 4), as json */
	Stringified, /* bigint, numeric, double precision with stringify_numeric_types: output, as a string */
};

/* is_hasura_rendering: a kind whose value differs from row_to_json's */
bool
is_hasura_rendering(ValueKind kind)
{
	return kind == ValueKind::GeoJson || kind == ValueKind::Stringified;
}

struct ColumnJson {
	ValueKind kind;
	Oid base_type;
	FmgrInfo output; /* Float, Output and Stringified: the output function; GeoJson: ST_AsGeoJSON */
};

/* Everything one trigger call needs, built once per call (i.e. once per statement). */
struct CaptureState {
	const char *trigger_name;
	const char *op;
	const char *schema_name;
	const char *table_name;
	TupleDesc desc;
	ColumnSet columns;        /* UPDATE: which columns must change */
	ColumnSet payload;        /* which columns appear in old/new */
	TupleDesc payload_desc;   /* blessed projection when payload is a list or has Hasura renderings */
	AttrNumber *proj_attnums; /* the columns of payload_desc */
	int proj_natts;
	Datum *proj_values;
	bool *proj_nulls;
	JsonText session_variables; /* the text route (direct == false) */
	JsonText trace_context;
	/* jsonb building (direct == true): one entry per attribute of desc */
	bool direct;
	ColumnJson *column_json; /* by attribute number - 1 */
	AttrNumber *row_attnums; /* the payload columns that are not dropped, in jsonb key order */
	JsonbValue *row_keys;    /* their names */
	int row_natts;
	AttrNumber row_last_attnum;     /* the highest of row_attnums */
	int hasura_renderings;          /* payload columns of a GeoJson or Stringified kind */
	JsonbValue session_variables_v; /* the settings as values of the event (direct route) */
	JsonbValue trace_context_v;
	MemoryContext row_ctx;   /* reset after every row */
	MemoryContext batch_ctx; /* reset after every flush */
	Datum *pending;          /* jsonb payloads not yet inserted */
	int npending;
	Size pending_bytes;
	int64 recorded;
};

SPIPlanPtr insert_plan = NULL;

/*
 * resolve_columns: turns "*" or a JSON array of column names (as stored in the pg trigger's
 * arguments) into attribute numbers of the table as it is now.
 */
void
resolve_columns(const char *spec, TupleDesc desc, const char *trigger_name, const char *what, ColumnSet *out)
{
	out->all = strcmp(spec, "*") == 0;
	out->count = 0;
	out->attnums = NULL;
	if (out->all)
		return;

	Jsonb *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(spec)));
	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed %s list in the pg trigger of event trigger \"%s\"", what, trigger_name),
				 errhint("Recreate the event trigger with hasura_events.create_event_trigger and \"replace\": true.")));
	int n = JB_ROOT_COUNT(jb);
	out->attnums = (AttrNumber *)palloc(sizeof(AttrNumber) * Max(n, 1));

	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue v;
	JsonbIteratorToken tok;
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvString)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("malformed %s list in the pg trigger of event trigger \"%s\"", what, trigger_name)));
		char *colname = pnstrdup(v.val.string.val, v.val.string.len);
		AttrNumber found = InvalidAttrNumber;
		for (int i = 0; i < desc->natts; i++) {
			Form_pg_attribute att = TupleDescAttr(desc, i);
			if (!att->attisdropped && strcmp(NameStr(att->attname), colname) == 0) {
				found = att->attnum;
				break;
			}
		}
		if (found == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" in the %s list of event trigger \"%s\" does not exist", colname, what,
							trigger_name),
					 errdetail("The column was renamed or dropped after the event trigger was created."),
					 errhint("Recreate the event trigger with \"replace\": true and the current column names.")));
		out->attnums[out->count++] = found;
	}
}

/*
 * setting_as_jsonb: a hasura.* setting (hasura.user, hasura.tracecontext) as jsonb, or NULL
 * (JSON null) when the setting is missing or empty. Parsed once per statement, so a malformed
 * value is reported clearly instead of as a broken event.
 */
Jsonb *
setting_as_jsonb(const char *setting)
{
	const char *value = GetConfigOption(setting, true, false);
	if (value == NULL || value[0] == '\0')
		return NULL;

	Datum jb;
	MemoryContext oldcxt = CurrentMemoryContext;
	PG_TRY();
	{
		jb = DirectFunctionCall1(jsonb_in, CStringGetDatum(value));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("setting \"%s\" is not valid JSON", setting),
				 errhint("Set it to a JSON object, e.g. SELECT set_config('%s', '%s', true), or to an empty "
						 "string for null.",
						 setting,
						 strcmp(setting, "hasura.user") == 0 ? "{\"x-hasura-role\": \"user\"}"
															 : "{\"trace_id\": \"...\", \"span_id\": \"...\"}")));
	}
	PG_END_TRY();
	return DatumGetJsonbP(jb);
}

/* jsonb_text: the JSON text of a setting_as_jsonb value, for the text route. */
JsonText
jsonb_text(Jsonb *jb)
{
	if (jb == NULL)
		return JsonText::null();
	char *text = JsonbToCString(NULL, &jb->root, 64);
	return {text, strlen(text)};
}

/*
 * event_table_of: the table the events name: the table the event trigger was created on. A pg
 * trigger Postgres cloned onto a partition (tgisclone) names the table of the trigger it was
 * cloned from (followed up pg_trigger.tgparentid), not the partition and not necessarily the root:
 * an event trigger created on a partition itself names that partition.
 */
void
event_table_of(Relation rel, Trigger *trigger, const char **schema_name, const char **table_name)
{
	Oid relid = RelationGetRelid(rel);
	if (trigger->tgisclone) {
		Relation tgrel = table_open(TriggerRelationId, AccessShareLock);
		Oid tgoid = trigger->tgoid;
		while (OidIsValid(tgoid)) {
			ScanKeyData key;
			ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(tgoid));
			SysScanDesc scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
			HeapTuple tup = systable_getnext(scan);
			tgoid = InvalidOid;
			if (HeapTupleIsValid(tup)) {
				Form_pg_trigger form = (Form_pg_trigger)GETSTRUCT(tup);
				relid = form->tgrelid;
				tgoid = form->tgparentid;
			}
			systable_endscan(scan);
		}
		table_close(tgrel, AccessShareLock);
	}
	*table_name = get_rel_name(relid);
	*schema_name = get_namespace_name(get_rel_namespace(relid));
}

bool plan_column_json(CaptureState *st);
void plan_projection(CaptureState *st);
void jsonb_value(JsonbValue *v, Jsonb *jb);

void
init_state(CaptureState *st, TriggerData *td)
{
	Trigger *trigger = td->tg_trigger;
	if (trigger->tgnargs != 3)
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("hasura_events.capture() expects 3 trigger arguments, got %d", trigger->tgnargs),
						errhint("Create event triggers with hasura_events.create_event_trigger, not CREATE TRIGGER.")));

	*st = CaptureState{};
	st->trigger_name = trigger->tgargs[0];
	st->desc = RelationGetDescr(td->tg_relation);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		st->op = "INSERT";
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		st->op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		st->op = "DELETE";
	else
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("hasura_events.capture() fires only for INSERT, UPDATE or DELETE")));

	event_table_of(td->tg_relation, trigger, &st->schema_name, &st->table_name);
	resolve_columns(trigger->tgargs[1], st->desc, st->trigger_name, "columns", &st->columns);
	resolve_columns(trigger->tgargs[2], st->desc, st->trigger_name, "payload", &st->payload);

	Jsonb *session_variables = setting_as_jsonb("hasura.user"); /* NULL: JSON null */
	Jsonb *trace_context = setting_as_jsonb("hasura.tracecontext");
	st->direct = plan_column_json(st);
	if (st->direct) {
		jsonb_value(&st->session_variables_v, session_variables);
		jsonb_value(&st->trace_context_v, trace_context);
	} else {
		/* the text route: row_to_json of the row or of its projection, settings as text */
		st->session_variables = jsonb_text(session_variables);
		st->trace_context = jsonb_text(trace_context);
		if (!st->payload.all || st->hasura_renderings > 0)
			plan_projection(st);
	}

	st->row_ctx = AllocSetContextCreate(CurrentMemoryContext, "hasura_events capture row", ALLOCSET_DEFAULT_SIZES);
	st->batch_ctx = AllocSetContextCreate(CurrentMemoryContext, "hasura_events capture batch", ALLOCSET_DEFAULT_SIZES);
	st->pending = (Datum *)palloc(sizeof(Datum) * kFlushRows);
}

/*
 * find_geojson_function: ST_AsGeoJSON(type, integer, integer) when type is PostGIS's geometry or
 * geography, found by name as Hasura does (a type of that name, the function in the type's
 * schema); InvalidOid for every other type, and when PostGIS is not installed.
 */
Oid
find_geojson_function(Oid type)
{
	HeapTuple tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	Form_pg_type form = (Form_pg_type)GETSTRUCT(tup);
	bool geo = strcmp(NameStr(form->typname), "geometry") == 0 || strcmp(NameStr(form->typname), "geography") == 0;
	Oid nsp = form->typnamespace;
	ReleaseSysCache(tup);
	if (!geo)
		return InvalidOid;
	char *nspname = get_namespace_name(nsp);
	if (nspname == NULL)
		return InvalidOid;
	Oid argtypes[3] = {type, INT4OID, INT4OID};
	List *name = list_make2(makeString(nspname), makeString(pstrdup("st_asgeojson")));
	return LookupFuncName(name, 3, argtypes, true);
}

/* The answers of find_geojson_function per type, for this backend. Any change to pg_type,
 * pg_proc or pg_namespace (CREATE/DROP/ALTER EXTENSION postgis among them) empties it; the
 * callback only marks it stale, as it may run in the middle of a lookup. */
struct GeojsonCacheEntry {
	Oid type; /* the key */
	Oid function;
};
HTAB *geojson_cache = NULL;
bool geojson_cache_stale = false;

void
geojson_cache_invalidate(Datum, int, uint32)
{
	geojson_cache_stale = true;
}

/* geojson_function: find_geojson_function through the cache */
Oid
geojson_function(Oid type)
{
	if (geojson_cache == NULL || geojson_cache_stale) {
		if (geojson_cache == NULL) {
			CacheRegisterSyscacheCallback(TYPEOID, geojson_cache_invalidate, (Datum)0);
			CacheRegisterSyscacheCallback(PROCOID, geojson_cache_invalidate, (Datum)0);
			CacheRegisterSyscacheCallback(NAMESPACEOID, geojson_cache_invalidate, (Datum)0);
		} else
			hash_destroy(geojson_cache);
		HASHCTL ctl;
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(GeojsonCacheEntry);
		geojson_cache = hash_create("hasura_events geojson functions", 16, &ctl, HASH_ELEM | HASH_BLOBS);
		geojson_cache_stale = false;
	}
	bool found;
	GeojsonCacheEntry *entry = (GeojsonCacheEntry *)hash_search(geojson_cache, &type, HASH_FIND, &found);
	if (found)
		return entry->function;
	Oid function = find_geojson_function(type);
	/* the lookup may have let invalidations in that emptied (re-created) nothing yet: the entry
	 * goes into the current table, and a stale mark set meanwhile drops it at the next use */
	entry = (GeojsonCacheEntry *)hash_search(geojson_cache, &type, HASH_ENTER, &found);
	entry->function = function;
	return function;
}

/*
 * column_kind: the ValueKind of a column type, following json_categorize_type of Postgres 15,
 * and Hasura's renderings (GeoJSON; strings for big numbers when stringify is set); false when
 * the row must go through row_to_json (arrays, composites, casts to json).
 */
bool
column_kind(Oid type, bool stringify, ColumnJson *out)
{
	Oid base = getBaseType(type);
	out->base_type = base;
	switch (base) {
	case TEXTOID:
	case VARCHAROID:
	case BPCHAROID: out->kind = ValueKind::Text; return true;
	case BOOLOID: out->kind = ValueKind::Bool; return true;
	case INT2OID:
	case INT4OID: out->kind = ValueKind::Int; return true;
	case INT8OID:
		if (!stringify) {
			out->kind = ValueKind::Int;
			return true;
		}
		out->kind = ValueKind::Stringified;
		break;
	case NUMERICOID:
		if (!stringify) {
			out->kind = ValueKind::Numeric;
			return true;
		}
		out->kind = ValueKind::Stringified;
		break;
	case FLOAT4OID: out->kind = ValueKind::Float; break;
	case FLOAT8OID: out->kind = stringify ? ValueKind::Stringified : ValueKind::Float; break;
	case DATEOID:
	case TIMESTAMPOID:
	case TIMESTAMPTZOID: out->kind = ValueKind::DateTime; return true;
	case JSONOID: out->kind = ValueKind::Json; return true;
	case JSONBOID: out->kind = ValueKind::Jsonb; return true;
	default:
		/* PostGIS's types are never built in; its cast to json (a GeoJSON without CRS) is not
		 * Hasura's rendering */
		if (base >= FirstNormalObjectId) {
			Oid geojson = geojson_function(base);
			if (OidIsValid(geojson)) {
				out->kind = ValueKind::GeoJson;
				fmgr_info(geojson, &out->output);
				return true;
			}
		}
		if (OidIsValid(get_element_type(base)) || base == ANYARRAYOID || base == ANYCOMPATIBLEARRAYOID ||
			base == RECORDARRAYOID || type_is_rowtype(base))
			return false;
		if (base >= FirstNormalObjectId) {
			Oid castfunc;
			if (find_coercion_pathway(JSONOID, base, COERCION_EXPLICIT, &castfunc) == COERCION_PATH_FUNC &&
				OidIsValid(castfunc))
				return false;
		}
		out->kind = ValueKind::Output;
		break;
	}
	Oid outfunc;
	bool varlena;
	getTypeOutputInfo(base, &outfunc, &varlena);
	fmgr_info(outfunc, &out->output);
	return true;
}

/* jsonb_key_order: jsonb's order of object keys (shorter first, then bytewise), for attnums */
int
jsonb_key_order(const void *a, const void *b, void *arg)
{
	TupleDesc desc = (TupleDesc)arg;
	const char *x = NameStr(TupleDescAttr(desc, *(const AttrNumber *)a - 1)->attname);
	const char *y = NameStr(TupleDescAttr(desc, *(const AttrNumber *)b - 1)->attname);
	size_t lx = strlen(x), ly = strlen(y);
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return memcmp(x, y, lx);
}

void string_value(JsonbValue *v, const char *data, size_t len);

/*
 * plan_column_json: whether every payload column has a kind (then events are built as jsonb).
 * The columns are put in the order jsonb keeps object keys, so that every row's object is built
 * in its final order, without the sort pushJsonbValue does per object.
 */
bool
plan_column_json(CaptureState *st)
{
	st->column_json = (ColumnJson *)palloc0(sizeof(ColumnJson) * Max(st->desc->natts, 1));
	int n = column_set_size(&st->payload, st->desc);
	st->row_attnums = (AttrNumber *)palloc(sizeof(AttrNumber) * Max(n, 1));
	st->row_natts = 0;
	st->row_last_attnum = 0;
	st->hasura_renderings = 0;
	bool direct = true;
	bool stringify = hasura_events_stringify_numeric_types;
	/* every column is looked at, also after one without a kind: the row_to_json route renders
	 * the Hasura kinds too */
	for (int i = 0; i < n; i++) {
		AttrNumber attnum = column_set_attnum(&st->payload, i);
		Form_pg_attribute att = TupleDescAttr(st->desc, attnum - 1);
		if (att->attisdropped)
			continue;
		ColumnJson *cj = &st->column_json[attnum - 1];
		if (!column_kind(att->atttypid, stringify, cj)) {
			cj->kind = ValueKind::Output; /* not used: the row takes the row_to_json route */
			direct = false;
			continue;
		}
		if (is_hasura_rendering(cj->kind))
			st->hasura_renderings++;
		st->row_attnums[st->row_natts++] = attnum;
		st->row_last_attnum = Max(st->row_last_attnum, attnum);
	}
	if (!direct)
		return false;
	qsort_arg(st->row_attnums, (size_t)st->row_natts, sizeof(AttrNumber), jsonb_key_order, st->desc);
	st->row_keys = (JsonbValue *)palloc(sizeof(JsonbValue) * Max(st->row_natts, 1));
	for (int i = 0; i < st->row_natts; i++) {
		const char *name = NameStr(TupleDescAttr(st->desc, st->row_attnums[i] - 1)->attname);
		string_value(&st->row_keys[i], name, strlen(name));
	}
	return true;
}

/*
 * plan_projection: for the row_to_json route, the blessed descriptor rows are projected onto: the
 * payload columns (those not dropped), with json for a GeoJson column and text for a Stringified
 * one, so that row_to_json renders them as Hasura does.
 */
void
plan_projection(CaptureState *st)
{
	int n = column_set_size(&st->payload, st->desc);
	st->proj_attnums = (AttrNumber *)palloc(sizeof(AttrNumber) * Max(n, 1));
	st->proj_natts = 0;
	for (int i = 0; i < n; i++) {
		AttrNumber attnum = column_set_attnum(&st->payload, i);
		if (!TupleDescAttr(st->desc, attnum - 1)->attisdropped)
			st->proj_attnums[st->proj_natts++] = attnum;
	}
	TupleDesc pd = CreateTemplateTupleDesc(st->proj_natts);
	for (int i = 0; i < st->proj_natts; i++) {
		AttrNumber attnum = st->proj_attnums[i];
		ValueKind kind = st->column_json[attnum - 1].kind;
		if (is_hasura_rendering(kind))
			TupleDescInitEntry(pd, (AttrNumber)(i + 1), NameStr(TupleDescAttr(st->desc, attnum - 1)->attname),
							   kind == ValueKind::GeoJson ? JSONOID : TEXTOID, -1, 0);
		else
			TupleDescCopyEntry(pd, (AttrNumber)(i + 1), st->desc, attnum);
	}
	st->payload_desc = BlessTupleDesc(pd);
	st->proj_values = (Datum *)palloc(sizeof(Datum) * Max(st->proj_natts, 1));
	st->proj_nulls = (bool *)palloc(sizeof(bool) * Max(st->proj_natts, 1));
}

/* geojson_text: ST_AsGeoJSON(value, 15, 4): 15 decimal digits at most, the CRS in its long form */
text *
geojson_text(const ColumnJson *cj, Datum value)
{
	return DatumGetTextPP(
		FunctionCall3(const_cast<FmgrInfo *>(&cj->output), value, Int32GetDatum(15), Int32GetDatum(4)));
}

/* string_value: a jsonb string pointing at data (not copied: data must outlive the event). */
void
string_value(JsonbValue *v, const char *data, size_t len)
{
	if (len > JENTRY_OFFLENMASK)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("string too long to represent as jsonb string"),
						errdetail("Due to an implementation restriction, jsonb strings cannot exceed %d bytes.",
								  JENTRY_OFFLENMASK)));
	v->type = jbvString;
	v->val.string.val = (char *)data;
	v->val.string.len = (int)len;
}

void
numeric_value(JsonbValue *v, Numeric n)
{
	v->type = jbvNumeric;
	v->val.numeric = n;
}

/*
 * jsonb_value: a jsonb datum as an in-memory value (NULL: JSON null). convertToJsonb takes no
 * binary containers inside a value tree, so arrays and objects are unpacked.
 */
void
jsonb_value(JsonbValue *v, Jsonb *jb)
{
	if (jb == NULL) {
		v->type = jbvNull;
		return;
	}
	if (JB_ROOT_IS_SCALAR(jb)) {
		if (!JsonbExtractScalar(&jb->root, v))
			elog(ERROR, "hasura_events: a scalar jsonb without its scalar");
		return;
	}
	JsonbParseState *ps = NULL;
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue tmp;
	JsonbValue *res = NULL;
	JsonbIteratorToken tok;
	while ((tok = JsonbIteratorNext(&it, &tmp, false)) != WJB_DONE)
		res = pushJsonbValue(&ps, tok, tok < WJB_BEGIN_ARRAY ? &tmp : NULL);
	*v = *res;
}

/* column_value: one non-null column value as row_to_json would render it, then jsonb_in. */
void
column_value(JsonbValue *v, const ColumnJson *cj, Datum value)
{
	switch (cj->kind) {
	case ValueKind::Text: {
		text *t = DatumGetTextPP(value);
		string_value(v, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		return;
	}
	case ValueKind::Bool:
		v->type = jbvBool;
		v->val.boolean = DatumGetBool(value);
		return;
	case ValueKind::Int: {
		int64 i = cj->base_type == INT2OID   ? DatumGetInt16(value)
				  : cj->base_type == INT4OID ? DatumGetInt32(value)
											 : DatumGetInt64(value);
		numeric_value(v, int64_to_numeric(i));
		return;
	}
	case ValueKind::Numeric: {
		Numeric n = DatumGetNumeric(value);
		if (numeric_is_nan(n) || numeric_is_inf(n)) {
			char *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
			string_value(v, s, strlen(s));
		} else
			numeric_value(v, n);
		return;
	}
	case ValueKind::Float: {
		char *s = OutputFunctionCall(const_cast<FmgrInfo *>(&cj->output), value);
		if (IsValidJsonNumber(s, (int)strlen(s)))
			numeric_value(v, DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(s),
																 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1))));
		else
			string_value(v, s, strlen(s));
		return;
	}
	case ValueKind::DateTime: {
		/* the value keeps a pointer to the string until the event is built */
		char *buf = (char *)palloc(MAXDATELEN + 1);
		JsonEncodeDateTime(buf, value, cj->base_type, NULL);
		string_value(v, buf, strlen(buf));
		return;
	}
	case ValueKind::Json: {
		char *s = text_to_cstring(DatumGetTextPP(value));
		jsonb_value(v, DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s))));
		return;
	}
	case ValueKind::Jsonb: jsonb_value(v, DatumGetJsonbP(value)); return;
	case ValueKind::Output:
	case ValueKind::Stringified: {
		char *s = OutputFunctionCall(const_cast<FmgrInfo *>(&cj->output), value);
		string_value(v, s, strlen(s));
		return;
	}
	case ValueKind::GeoJson: {
		char *s = text_to_cstring(geojson_text(cj, value));
		jsonb_value(v, DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s))));
		return;
	}
	}
}

/* row_value: the row of the slot as a JSON object of its payload columns, or null. */
void
row_value(CaptureState *st, TupleTableSlot *slot, JsonbValue *out)
{
	if (slot == NULL) {
		out->type = jbvNull;
		return;
	}
	slot_getsomeattrs(slot, st->row_last_attnum);
	JsonbPair *pairs = (JsonbPair *)palloc(sizeof(JsonbPair) * Max(st->row_natts, 1));
	for (int i = 0; i < st->row_natts; i++) {
		AttrNumber attnum = st->row_attnums[i];
		pairs[i].key = st->row_keys[i];
		pairs[i].order = (uint32)i;
		if (slot->tts_isnull[attnum - 1])
			pairs[i].value.type = jbvNull;
		else
			column_value(&pairs[i].value, &st->column_json[attnum - 1], slot->tts_values[attnum - 1]);
	}
	out->type = jbvObject;
	out->val.object.nPairs = st->row_natts;
	out->val.object.pairs = pairs;
}

/* set_pair: one key (a literal) and its place in the object's order. */
JsonbValue *
set_pair(JsonbPair *pair, const char *key, uint32 order)
{
	string_value(&pair->key, key, strlen(key));
	pair->order = order;
	return &pair->value;
}

/*
 * event_jsonb: the stored event object built as jsonb directly: the same value as jsonb_in of
 * append_event_json's text, without writing and parsing the text. Every object is built with its
 * keys already in jsonb's order (shorter first, then bytewise), which convertToJsonb keeps.
 */
Jsonb *
event_jsonb(CaptureState *st, TupleTableSlot *oldslot, TupleTableSlot *newslot)
{
	JsonbPair data[2];
	row_value(st, newslot, set_pair(&data[0], "new", 0));
	row_value(st, oldslot, set_pair(&data[1], "old", 1));
	JsonbPair top[4];
	string_value(set_pair(&top[0], "op", 0), st->op, strlen(st->op));
	JsonbValue *d = set_pair(&top[1], "data", 1);
	d->type = jbvObject;
	d->val.object.nPairs = 2;
	d->val.object.pairs = data;
	*set_pair(&top[2], "trace_context", 2) = st->trace_context_v;
	*set_pair(&top[3], "session_variables", 3) = st->session_variables_v;
	JsonbValue root;
	root.type = jbvObject;
	root.val.object.nPairs = 4;
	root.val.object.pairs = top;
	return JsonbValueToJsonb(&root);
}

/* update_changed_listened_column: whether an UPDATE changed a column the trigger listens to. */
bool
update_changed_listened_column(CaptureState *st, TupleTableSlot *oldslot, TupleTableSlot *newslot)
{
	int n = column_set_size(&st->columns, st->desc);
	for (int i = 0; i < n; i++) {
		AttrNumber attnum = column_set_attnum(&st->columns, i);
		Form_pg_attribute att = TupleDescAttr(st->desc, attnum - 1);
		if (att->attisdropped)
			continue;
		bool oldnull, newnull;
		Datum oldv = slot_getattr(oldslot, attnum, &oldnull);
		Datum newv = slot_getattr(newslot, attnum, &newnull);
		if (oldnull != newnull)
			return true;
		if (!oldnull && !datum_image_eq(oldv, newv, att->attbyval, att->attlen))
			return true;
	}
	return false;
}

/* row_json: row_to_json of the slot's row, or of its projection onto the payload columns. */
JsonText
row_json(CaptureState *st, TupleTableSlot *slot)
{
	if (slot == NULL)
		return JsonText::null();

	Datum row;
	if (st->payload_desc == NULL)
		row = ExecFetchSlotHeapTupleDatum(slot);
	else {
		for (int i = 0; i < st->proj_natts; i++) {
			AttrNumber attnum = st->proj_attnums[i];
			Datum value = slot_getattr(slot, attnum, &st->proj_nulls[i]);
			const ColumnJson *cj = &st->column_json[attnum - 1];
			if (!st->proj_nulls[i] && cj->kind == ValueKind::GeoJson)
				value = PointerGetDatum(geojson_text(cj, value)); /* json is stored as its text */
			else if (!st->proj_nulls[i] && cj->kind == ValueKind::Stringified)
				value = CStringGetTextDatum(OutputFunctionCall(const_cast<FmgrInfo *>(&cj->output), value));
			st->proj_values[i] = value;
		}
		HeapTuple proj = heap_form_tuple(st->payload_desc, st->proj_values, st->proj_nulls);
		row = HeapTupleGetDatum(proj);
	}
	text *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));
	return {VARDATA_ANY(json), (size_t)VARSIZE_ANY_EXHDR(json)};
}

/* The columns of hdb_catalog.event_log the direct insert fills, in table order. */
const CatalogColumn kEventLogColumns[] = {
	{"id", TEXTOID},
	{"schema_name", TEXTOID},
	{"table_name", TEXTOID},
	{"trigger_name", TEXTOID},
	{"payload", JSONBOID},
	{"delivered", BOOLOID},
	{"error", BOOLOID},
	{"tries", INT4OID},
	{"created_at", TIMESTAMPTZOID},
	{"locked", TIMESTAMPTZOID},
	{"next_retry_at", TIMESTAMPTZOID},
	{"archived", BOOLOID},
};
constexpr int kEventLogNatts = lengthof(kEventLogColumns);

/*
 * insert_events_direct: the pending events go straight into the heap and the indexes
 * (direct_insert.cpp), with the column defaults of the install script computed here.
 */
void
insert_events_direct(CaptureState *st, Relation rel)
{
	DirectInsert di;
	direct_insert_begin(&di, rel);
	Datum schema_name = CStringGetTextDatum(st->schema_name);
	Datum table_name = CStringGetTextDatum(st->table_name);
	Datum trigger_name = CStringGetTextDatum(st->trigger_name);
	Datum created_at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()); /* now() */
	for (int i = 0; i < st->npending; i++) {
		TupleTableSlot *slot = direct_insert_slot(&di);
		Datum *v = slot->tts_values;
		bool *n = slot->tts_isnull;
		v[0] = PointerGetDatum(hasura_events_new_id());
		v[1] = schema_name;
		v[2] = table_name;
		v[3] = trigger_name;
		v[4] = st->pending[i];
		v[5] = BoolGetDatum(false); /* delivered */
		v[6] = BoolGetDatum(false); /* error */
		v[7] = Int32GetDatum(0);    /* tries */
		v[8] = created_at;
		v[11] = BoolGetDatum(false); /* archived */
		for (int k = 0; k < kEventLogNatts; k++)
			n[k] = (k == 9 || k == 10); /* locked, next_retry_at */
		direct_insert_row(&di);
	}
	direct_insert_end(&di);
}

/* insert_events_sql: the general path, for an event_log someone altered. */
void
insert_events_sql(CaptureState *st)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "hasura_events: SPI_connect failed");
	if (insert_plan == NULL) {
		Oid argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, JSONBARRAYOID};
		SPIPlanPtr plan =
			SPI_prepare("INSERT INTO hdb_catalog.event_log (schema_name, table_name, trigger_name, payload) "
						"SELECT $1, $2, $3, p FROM pg_catalog.unnest($4) AS p",
						4, argtypes);
		if (plan == NULL)
			elog(ERROR, "hasura_events: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		insert_plan = plan;
	}

	ArrayType *arr = construct_array(st->pending, st->npending, JSONBOID, -1, false, TYPALIGN_INT);
	Datum values[4] = {CStringGetTextDatum(st->schema_name), CStringGetTextDatum(st->table_name),
					   CStringGetTextDatum(st->trigger_name), PointerGetDatum(arr)};
	int rc = SPI_execute_plan(insert_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "hasura_events: inserting events failed: %s", SPI_result_code_string(rc));
	SPI_finish();
}

/* flush_events: inserts the pending events, as the owner of event_log. */
void
flush_events(CaptureState *st)
{
	if (st->npending == 0)
		return;

	Relation rel = table_open(event_log_relid(), RowExclusiveLock);

	/* Events are written with the privileges of the catalog's owner: writers of the table need
	 * no rights on hdb_catalog. The SQL path names everything schema-qualified: no search_path
	 * lookups. */
	Oid save_userid;
	int save_sec_context;
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(rel->rd_rel->relowner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	if (relation_has_layout(rel, kEventLogColumns, kEventLogNatts))
		insert_events_direct(st, rel);
	else
		insert_events_sql(st);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	table_close(rel, NoLock);
	CommandCounterIncrement();

	st->recorded += st->npending;
	st->npending = 0;
	st->pending_bytes = 0;
	MemoryContextReset(st->batch_ctx);
}

/* capture_row: one row change; old/new are NULL where the operation has none. */
void
capture_row(CaptureState *st, TupleTableSlot *oldslot, TupleTableSlot *newslot)
{
	if (oldslot != NULL && newslot != NULL && !update_changed_listened_column(st, oldslot, newslot))
		return;

	MemoryContext oldcxt = MemoryContextSwitchTo(st->row_ctx);
	Datum payload;
	if (st->direct)
		payload = JsonbPGetDatum(event_jsonb(st, oldslot, newslot));
	else {
		StringInfoData buf;
		initStringInfo(&buf);
		StringInfoSink sink{&buf};
		hasura_events::append_event_json(sink, st->op, row_json(st, oldslot), row_json(st, newslot),
										 st->session_variables, st->trace_context);
		payload = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	}

	MemoryContextSwitchTo(st->batch_ctx);
	Jsonb *copy = DatumGetJsonbPCopy(payload);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(st->row_ctx);

	st->pending[st->npending++] = PointerGetDatum(copy);
	st->pending_bytes += VARSIZE(copy);
	if (st->npending >= kFlushRows || st->pending_bytes >= kFlushBytes)
		flush_events(st);
}

/* capture_statement: walks the transition tables of a statement-level firing. */
void
capture_statement(CaptureState *st, TriggerData *td)
{
	Tuplestorestate *oldtable = td->tg_oldtable;
	Tuplestorestate *newtable = td->tg_newtable;
	bool want_old = !TRIGGER_FIRED_BY_INSERT(td->tg_event);
	bool want_new = !TRIGGER_FIRED_BY_DELETE(td->tg_event);
	if ((want_old && oldtable == NULL) || (want_new && newtable == NULL))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("pg trigger of event trigger \"%s\" has no transition table", st->trigger_name),
						errhint("Recreate the event trigger with hasura_events.create_event_trigger.")));

	TupleTableSlot *oldslot = want_old ? MakeSingleTupleTableSlot(st->desc, &TTSOpsMinimalTuple) : NULL;
	TupleTableSlot *newslot = want_new ? MakeSingleTupleTableSlot(st->desc, &TTSOpsMinimalTuple) : NULL;
	if (oldslot)
		tuplestore_rescan(oldtable);
	if (newslot)
		tuplestore_rescan(newtable);

	for (;;) {
		CHECK_FOR_INTERRUPTS();
		bool have_old = oldslot ? tuplestore_gettupleslot(oldtable, true, false, oldslot) : false;
		bool have_new = newslot ? tuplestore_gettupleslot(newtable, true, false, newslot) : false;
		if (oldslot && newslot && have_old != have_new)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
							errmsg("transition tables of an UPDATE have different row counts")));
		if (!have_old && !have_new)
			break;
		capture_row(st, have_old ? oldslot : NULL, have_new ? newslot : NULL);
	}
	flush_events(st);

	if (oldslot)
		ExecDropSingleTupleTableSlot(oldslot);
	if (newslot)
		ExecDropSingleTupleTableSlot(newslot);
}

/* capture_single_row: a FOR EACH ROW firing (trigger_on_replication). */
void
capture_single_row(CaptureState *st, TriggerData *td)
{
	TupleTableSlot *oldslot = NULL, *newslot = NULL;
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		newslot = td->tg_trigslot;
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		oldslot = td->tg_trigslot;
	else {
		oldslot = td->tg_trigslot;
		newslot = td->tg_newslot;
	}
	capture_row(st, oldslot, newslot);
	flush_events(st);
}

} // namespace

extern "C" {

PG_FUNCTION_INFO_V1(hasura_events_capture);

/*
 * hasura_events_capture: the trigger function of every event trigger.
 * Arguments (set by create_event_trigger): event trigger name, columns ("*" or a JSON array),
 * payload ("*" or a JSON array).
 */
PGDLLEXPORT Datum
hasura_events_capture(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("hasura_events.capture() must be called as a trigger")));
	TriggerData *td = (TriggerData *)fcinfo->context;
	if (!TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("hasura_events.capture() must fire AFTER the change")));

	bool row_level = TRIGGER_FIRED_FOR_ROW(td->tg_event);
	CaptureState st;
	init_state(&st, td);
	if (row_level)
		capture_single_row(&st, td);
	else
		capture_statement(&st, td);

	if (st.recorded > 0)
		hasura_events_note_events_recorded(GetCurrentTransactionStartTimestamp()); /* their created_at */

	MemoryContextDelete(st.row_ctx);
	MemoryContextDelete(st.batch_ctx);
	return PointerGetDatum(NULL);
}

} // extern "C"

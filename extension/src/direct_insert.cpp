/*
 * extension/src/direct_insert.cpp
 *
 * Rows into the extension's own catalog tables (event_log, event_invocation_logs) straight
 * into the heap and the indexes, as COPY writes them: no SQL to parse, plan or run per batch,
 * and the heap rows in batches (table_multi_insert: one WAL record per heap page instead of one
 * per row), each batch's index entries after it. Used only when the table is exactly as the
 * install script made it (relation_has_layout); callers keep a SQL path for a table someone
 * altered. A table with triggers or stored generated columns (someone added them) gets the
 * executor's simple-insert path, row by row, as logical replication applies rows.
 *
 * Postgres regime: plain data only, errors by ereport.
 */
extern "C" {
#include "postgres.h"

#include "access/heapam.h"
#include "access/hio.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "storage/bufmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

#include "hasura_events.hpp"

/* Rows per table_multi_insert. A heap page holds ~20 events; COPY buffers up to 1000 rows. */
constexpr int kBatchRows = 128;

Oid
event_log_relid(void)
{
	Oid relid = get_relname_relid("event_log", get_namespace_oid("hdb_catalog", false));
	if (!OidIsValid(relid))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("hdb_catalog.event_log does not exist"),
						errhint("The hasura_events extension is not installed correctly in this database.")));
	return relid;
}

/*
 * Prepared index predicates and expressions, kept from one insert to the next.
 *
 * ExecOpenIndices gives every statement new IndexInfos, and ExecInsertIndexTuples prepares a
 * partial index's predicate and an expression index's expressions for them on first use
 * (expression_planner, then ExecInitQual/ExecInitExpr): work paid once per statement, which a
 * single-row INSERT pays in full for its one event. The
 * prepared states depend only on the index's definition, so they are kept per index, in their
 * own memory context, and handed to each statement's IndexInfos.
 *
 * A relcache invalidation of a cached index or of its table (or of everything) marks the cache
 * stale; it is emptied at the next insert that is not nested in another one. A nested insert (a
 * trigger someone put on the table, running inside our insert) neither uses nor empties the
 * cache, so states in use are never evaluated twice at once nor freed under their user. The
 * nesting depth is reset at the end of every transaction (an error may have skipped an end).
 */
namespace {

struct IndexStates {
	Oid indexoid;
	Oid heapoid;
	bool cacheable;       /* false: the statements prepare their own (not plain) */
	ExprState *predicate; /* NULL: not a partial index */
	List *expressions;    /* NIL: no expression columns */
};

MemoryContext index_states_cxt = NULL;
List *index_states = NIL; /* of IndexStates *, in index_states_cxt */
bool index_states_stale = false;
int insert_depth = 0;
bool callbacks_registered = false;

void
index_states_invalidate(Datum arg, Oid relid)
{
	if (index_states == NIL || index_states_stale)
		return;
	ListCell *lc;
	foreach (lc, index_states) {
		IndexStates *st = (IndexStates *)lfirst(lc);
		if (!OidIsValid(relid) || st->indexoid == relid || st->heapoid == relid) {
			index_states_stale = true;
			return;
		}
	}
}

void
insert_depth_reset(XactEvent event, void *arg)
{
	insert_depth = 0;
}

/*
 * plain_expression_walker: true when the tree holds something other than columns of the row,
 * constants, AND/OR/NOT, COALESCE, IS [NOT] NULL, IS [NOT] TRUE/FALSE and binary-compatible
 * relabelings. Only such trees are cached: no function is called (so no EXECUTE permission or
 * domain constraint is checked once for good), and no step keeps per-statement memory (a
 * whole-row Var keeps a tuple descriptor there on first use, for instance).
 */
bool
plain_expression_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node)) {
	case T_Var:
		if (((Var *)node)->varattno <= 0)
			return true; /* whole-row or system column */
		return false;
	case T_Const: return false;
	case T_List:
	case T_BoolExpr:
	case T_CoalesceExpr:
	case T_NullTest:
	case T_BooleanTest:
	case T_RelabelType:
		/* PG15's walker type is an unprototyped function pointer; void (*)(void) casts silently */
		return expression_tree_walker(node, (bool (*)())(void (*)(void))plain_expression_walker, context);
	default: return true;
	}
}

/*
 * index_states_for: the cached states of an index, prepared now if they are not cached yet;
 * NULL when its predicate or expressions are not plain (see plain_expression_walker): the
 * statement then prepares them, as Postgres does.
 */
IndexStates *
index_states_for(Relation index, Relation heap, IndexInfo *info)
{
	ListCell *lc;
	foreach (lc, index_states) {
		IndexStates *st = (IndexStates *)lfirst(lc);
		if (st->indexoid == RelationGetRelid(index))
			return st->cacheable ? st : NULL;
	}
	/* the states are built in a context of their own, which joins the cache only when they are
	 * complete: an error on the way leaves nothing behind in the cache */
	MemoryContext build =
		AllocSetContextCreate(CurrentMemoryContext, "hasura_events index state", ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(build);
	/* planned and initialised as ExecPrepareQual and ExecPrepareExpr do */
	Expr *predicate = info->ii_Predicate != NIL ? expression_planner((Expr *)copyObjectImpl(info->ii_Predicate)) : NULL;
	List *expressions = NIL;
	foreach (lc, info->ii_Expressions)
		expressions = lappend(expressions, expression_planner((Expr *)copyObjectImpl(lfirst(lc))));
	bool cacheable =
		!plain_expression_walker((Node *)predicate, NULL) && !plain_expression_walker((Node *)expressions, NULL);
	ExprState *predicate_state = NULL;
	List *expression_states = NIL;
	if (cacheable) {
		if (predicate != NULL)
			predicate_state = ExecInitQual((List *)predicate, NULL);
		foreach (lc, expressions)
			expression_states = lappend(expression_states, ExecInitExpr((Expr *)lfirst(lc), NULL));
	}
	/* the entry (for one that is not cacheable, the verdict only) */
	MemoryContextSwitchTo(index_states_cxt);
	IndexStates *st = (IndexStates *)palloc(sizeof(IndexStates));
	*st = IndexStates{RelationGetRelid(index), RelationGetRelid(heap), cacheable, predicate_state, expression_states};
	index_states = lappend(index_states, st);
	if (cacheable)
		MemoryContextSetParent(build, index_states_cxt); /* last: it cannot fail */
	else
		MemoryContextDelete(build);
	MemoryContextSwitchTo(old);
	return cacheable ? st : NULL;
}

/* use_cached_index_states: gives the statement's IndexInfos the cached states (not nested). */
void
use_cached_index_states(ResultRelInfo *rri)
{
	if (!callbacks_registered) {
		index_states_cxt = AllocSetContextCreate(TopMemoryContext, "hasura_events index states", ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(index_states_invalidate, (Datum)0);
		RegisterXactCallback(insert_depth_reset, NULL);
		callbacks_registered = true;
	}
	if (insert_depth > 1)
		return;
	if (index_states_stale) {
		MemoryContextReset(index_states_cxt);
		index_states = NIL;
		index_states_stale = false;
	}
	for (int i = 0; i < rri->ri_NumIndices; i++) {
		IndexInfo *info = rri->ri_IndexRelationInfo[i];
		if (info->ii_Predicate == NIL && info->ii_Expressions == NIL)
			continue;
		IndexStates *st = index_states_for(rri->ri_IndexRelationDescs[i], rri->ri_RelationDesc, info);
		if (st == NULL)
			continue;
		info->ii_PredicateState = st->predicate;
		info->ii_ExpressionsState = st->expressions;
	}
}

/*
 * new_bulk_insert_state: GetBulkInsertState without its ring of buffers (see the caller).
 * GetBulkInsertState sets up a 16 MB BULKWRITE ring that we would drop at once: a single-row
 * INSERT paid for it for its one event.
 */
BulkInsertState
new_bulk_insert_state(void)
{
#if PG_VERSION_NUM < 160000
	BulkInsertState bistate = (BulkInsertState)palloc(sizeof(BulkInsertStateData));
	bistate->strategy = NULL;
	bistate->current_buf = InvalidBuffer;
#else
	BulkInsertState bistate = GetBulkInsertState();
	FreeAccessStrategy(bistate->strategy);
	bistate->strategy = NULL;
#endif
	return bistate;
}

} // namespace

bool
relation_has_layout(Relation rel, const CatalogColumn *columns, int ncolumns)
{
	TupleDesc desc = RelationGetDescr(rel);
	if (desc->natts != ncolumns || rel->rd_rel->relkind != RELKIND_RELATION)
		return false;
	for (int i = 0; i < ncolumns; i++) {
		Form_pg_attribute att = TupleDescAttr(desc, i);
		if (att->attisdropped || strcmp(NameStr(att->attname), columns[i].name) != 0 ||
			att->atttypid != columns[i].type)
			return false;
	}
	return true;
}

void
direct_insert_begin(DirectInsert *di, Relation rel)
{
	di->rel = rel;
	di->estate = CreateExecutorState();
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(di->estate, list_make1(rte));
	di->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(di->rri, rel, 1, NULL, 0);
	/* where the AFTER triggers of a table someone gave triggers look for it (as logical
	 * replication's apply does); otherwise they open the table again and leave it open */
	di->estate->es_opened_result_relations = lappend(di->estate->es_opened_result_relations, di->rri);
	di->estate->es_output_cid = GetCurrentCommandId(true);
	ExecOpenIndices(di->rri, false);
	insert_depth++;
	use_cached_index_states(di->rri);
	AfterTriggerBeginQuery();

	/* The page being filled stays pinned between rows. Without the bulk-write ring buffer
	 * strategy: the rows are read again soon (events by the dispatcher), they should stay in
	 * shared buffers. Only for a table without triggers and stored generated columns, where
	 * ExecSimpleRelationInsert's steps reduce to the ones in direct_insert_row. */
	di->bistate = NULL;
	if (di->rri->ri_TrigDesc == NULL && (rel->rd_att->constr == NULL || !rel->rd_att->constr->has_generated_stored)) {
		di->bistate = new_bulk_insert_state();
	}
	di->slots = (TupleTableSlot **)palloc0(sizeof(TupleTableSlot *) * kBatchRows);
	di->nslots = 0;
	di->nbuffered = 0;
}

/* flush: the buffered rows into the heap in one table_multi_insert, then their index entries */
static void
flush(DirectInsert *di)
{
	if (di->nbuffered == 0)
		return;
	table_multi_insert(di->rel, di->slots, di->nbuffered, di->estate->es_output_cid, 0, di->bistate);
	for (int i = 0; i < di->nbuffered; i++) {
		ExecInsertIndexTuples(di->rri, di->slots[i], di->estate, false, false, NULL, NIL);
		ExecClearTuple(di->slots[i]);
	}
	di->nbuffered = 0;
}

TupleTableSlot *
direct_insert_slot(DirectInsert *di)
{
	int i = di->bistate != NULL ? di->nbuffered : 0;
	if (i == di->nslots) {
		/* the heap's own slot type: table_multi_insert forms each row's tuple in its slot */
		di->slots[i] = ExecInitExtraTupleSlot(di->estate, RelationGetDescr(di->rel), table_slot_callbacks(di->rel));
		di->nslots++;
	}
	ExecClearTuple(di->slots[i]);
	return di->slots[i];
}

void
direct_insert_row(DirectInsert *di)
{
	if (di->bistate == NULL) {
		TupleTableSlot *slot = ExecStoreVirtualTuple(di->slots[0]);
		ExecSimpleRelationInsert(di->rri, di->estate, slot);
		return;
	}
	TupleTableSlot *slot = ExecStoreVirtualTuple(di->slots[di->nbuffered]);
	if (di->rel->rd_att->constr != NULL)
		ExecConstraints(di->rri, slot, di->estate);
	if (++di->nbuffered == kBatchRows)
		flush(di);
}

void
direct_insert_end(DirectInsert *di)
{
	flush(di);
	if (di->bistate != NULL)
		FreeBulkInsertState(di->bistate);
	AfterTriggerEndQuery(di->estate);
	ExecCloseIndices(di->rri);
	ExecResetTupleTable(di->estate->es_tupleTable, false);
	FreeExecutorState(di->estate);
	if (insert_depth > 0)
		insert_depth--;
}

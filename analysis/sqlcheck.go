package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
)

// maxSQLSize bounds custom SQL, as collab does.
const maxSQLSize = collab.MaxSQLSize

// acceptedClass reports whether custom SQL may use an expression class.
func acceptedClass(class string) bool {
	switch class {
	case "CONSTANT", "COLUMN_REF", "FUNCTION", "COMPARISON", "CONJUNCTION", "OPERATOR", "CASE", "CAST", "BETWEEN", "COLLATE":
		return true
	}
	return false
}

// refusedClass explains why an expression class is refused.
func refusedClass(class string) string {
	switch class {
	case "SUBQUERY":
		return "subqueries are not accepted: join the datasets in the FROM clause"
	case "WINDOW":
		return "window functions are not accepted"
	case "STAR":
		return "* and COLUMNS(...) are not accepted: name the columns"
	case "PARAMETER":
		return "parameters are not accepted"
	case "LAMBDA":
		return "lambdas are not accepted"
	case "POSITIONAL_REFERENCE":
		return "positional references (#n) are not accepted"
	}
	return "expressions of class " + class + " are not accepted"
}

// aggFunc maps the DuckDB aggregates custom SQL may use to the measure
// functions of output policies.
func aggFunc(name string) (collab.AggFunc, bool) {
	switch name {
	case "count", "count_star":
		return collab.AggCount, true
	case "sum":
		return collab.AggSum, true
	case "avg", "mean":
		return collab.AggAvg, true
	case "min":
		return collab.AggMin, true
	case "max":
		return collab.AggMax, true
	}
	return "", false
}

// deniedFunc reports whether a scalar function reads the session or has
// side effects; the lock-down makes them harmless, the checker refuses
// them anyway.
func deniedFunc(name string) bool {
	switch name {
	case "setseed", "nextval", "currval", "current_setting", "getvariable", "getenv", "current_query", "error":
		return true
	}
	return false
}

// selectKey reports whether k is a field of DuckDB's SELECT_NODE; any
// other, non-empty, is refused, so that a later DuckDB cannot add
// semantics the checker does not see.
func selectKey(k string) bool {
	switch k {
	case "type", "modifiers", "cte_map", "select_list", "from_table", "where_clause", "group_expressions",
		"group_sets", "aggregate_handling", "having", "sample", "qualify":
		return true
	}
	return false
}

// tableInst is one table reference of the query's FROM clause.
type tableInst struct {
	alias string
	ds    *collab.Dataset
}

// sqlChecker checks one custom SQL statement's syntax tree.
type sqlChecker struct {
	aggs    map[string]bool
	m       *collab.Manifest
	a       *collab.Analysis
	pol     *policy
	tables  []*tableInst
	aliases map[string]bool // select-list aliases, lower case
	visited int             // expressions checked
	selAgg  bool            // the select list aggregates
}

// exprCtx says where an expression is.
type exprCtx struct {
	clause   string
	inAgg    bool
	joinCond bool // a conjunct of a join condition
}

// compileSQL checks custom SQL (docs/spec/analysis.md §4) and rewrites it
// with the hidden threshold columns appended to its select list.
func (e *Engine) compileSQL(ctx context.Context, m *collab.Manifest, a *collab.Analysis, pol *policy) (*plan, []Threshold, error) {
	if len(a.SQL) > maxSQLSize {
		return nil, nil, fmt.Errorf("%w: analysis %q: longer than %d bytes", ErrUnsupportedSQL, a.ID, maxSQLSize)
	}
	if e.aggs == nil {
		aggs, err := e.aggregateNames(ctx)
		if err != nil {
			return nil, nil, err
		}
		e.aggs = aggs
	}
	tree, err := e.parseSQL(ctx, a.SQL)
	if err != nil {
		return nil, nil, fmt.Errorf("analysis %q: %w", a.ID, err)
	}
	c := &sqlChecker{aggs: e.aggs, m: m, a: a, pol: pol, aliases: map[string]bool{}}
	node, err := c.check(tree)
	if err != nil {
		return nil, nil, fmt.Errorf("analysis %q: %w", a.ID, err)
	}
	p := &plan{}
	var thresholds []Threshold
	list, _ := node["select_list"].([]any)
	for i, t := range c.tables {
		ids := identityColumns(t.ds.Descriptor.Schema)
		thresholds = append(thresholds, Threshold{Dataset: t.ds.ID, Alias: t.alias, IdentityColumns: ids, MinDistinctIdentities: pol.min})
		if len(ids) == 0 {
			list = append(list, countNode(fmt.Sprintf("%sk%d", hiddenPrefix, len(p.hidden)), nil, false))
			p.hidden = append(p.hidden, hiddenCount{instance: i})
			continue
		}
		for _, id := range ids {
			list = append(list, countNode(fmt.Sprintf("%sk%d", hiddenPrefix, len(p.hidden)), []string{t.alias, id}, true))
			p.hidden = append(p.hidden, hiddenCount{instance: i, column: id})
		}
	}
	node["select_list"] = list
	rewritten, err := json.Marshal(tree)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: analysis %q: encode the rewritten tree: %w", ErrUnsupportedSQL, a.ID, err)
	}
	if p.sql, err = e.deparse(ctx, rewritten); err != nil {
		return nil, nil, fmt.Errorf("analysis %q: %w", a.ID, err)
	}
	// The statement that runs must be exactly the tree that was checked,
	// plus the hidden columns: parse it again and compare.
	again, err := e.parseSQL(ctx, p.sql)
	if err != nil {
		return nil, nil, fmt.Errorf("analysis %q: rewritten SQL: %w", a.ID, err)
	}
	if !reflect.DeepEqual(stripLocations(again), stripLocations(tree)) {
		return nil, nil, fmt.Errorf("%w: analysis %q: the statement does not survive DuckDB's round trip through its syntax tree unchanged", ErrUnsupportedSQL, a.ID)
	}
	return p, thresholds, nil
}

// parseSQL returns DuckDB's syntax tree of sql (json_serialize_sql), with
// numbers kept exact.
func (e *Engine) parseSQL(ctx context.Context, sql string) (any, error) {
	var s string
	if err := e.conn.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql(CAST($1 AS VARCHAR)) AS VARCHAR)", sql).Scan(&s); err != nil {
		return nil, fmt.Errorf("%w: parse: %w", ErrUnsupportedSQL, queryError(err))
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("%w: parse: DuckDB's syntax tree is not JSON: %w", ErrUnsupportedSQL, err)
	}
	return tree, nil
}

// deparse turns a syntax tree back into SQL (json_deserialize_sql).
func (e *Engine) deparse(ctx context.Context, tree []byte) (string, error) {
	var s string
	if err := e.conn.QueryRowContext(ctx, "SELECT json_deserialize_sql(CAST($1 AS JSON))", string(tree)).Scan(&s); err != nil {
		return "", fmt.Errorf("%w: rewrite: %w", ErrUnsupportedSQL, queryError(err))
	}
	return s, nil
}

// stripLocations returns a copy of a syntax tree without query_location
// fields, which change when SQL is re-rendered.
func stripLocations(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if k != "query_location" {
				out[k] = stripLocations(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripLocations(e)
		}
		return out
	}
	return v
}

// countNode is the syntax tree of count(DISTINCT alias.column) AS name, or
// count(*) AS name when column is nil.
func countNode(name string, column []string, distinct bool) map[string]any {
	fn := "count_star"
	children := []any{}
	if column != nil {
		fn = "count"
		names := make([]any, len(column))
		for i, n := range column {
			names[i] = n
		}
		children = append(children, map[string]any{"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": "",
			"query_location": json.Number("18446744073709551615"), "column_names": names})
	}
	return map[string]any{"class": "FUNCTION", "type": "FUNCTION", "alias": name,
		"query_location": json.Number("18446744073709551615"), "function_name": fn, "schema": "",
		"children": children, "filter": nil, "order_bys": map[string]any{"type": "ORDER_MODIFIER", "orders": []any{}},
		"distinct": distinct, "is_operator": false, "export_state": false, "catalog": ""}
}

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupportedSQL, fmt.Sprintf(format, args...))
}

// check checks the whole tree and returns the SELECT node.
func (c *sqlChecker) check(tree any) (map[string]any, error) {
	root, ok := tree.(map[string]any)
	if !ok {
		return nil, refuse("malformed syntax tree")
	}
	if isErr, _ := root["error"].(bool); isErr {
		msg, _ := root["error_message"].(string)
		if strings.Contains(msg, "Only SELECT") {
			return nil, refuse("%sonly a SELECT statement is accepted", quoteExcerpt(notSelect(c.a.SQL)))
		}
		return nil, refuse("%s", msg)
	}
	stmts, _ := root["statements"].([]any)
	if len(stmts) != 1 {
		return nil, refuse("want exactly one statement, got %d", len(stmts))
	}
	stmt, ok := stmts[0].(map[string]any)
	if !ok {
		return nil, refuse("malformed statement")
	}
	if !isEmpty(stmt["named_param_map"]) {
		return nil, refuse("named parameters are not accepted")
	}
	node, ok := stmt["node"].(map[string]any)
	if !ok {
		return nil, refuse("malformed statement")
	}
	if t := str(node, "type"); t != "SELECT_NODE" {
		switch t {
		case "SET_OPERATION_NODE":
			return nil, refuse("UNION, INTERSECT and EXCEPT are not accepted")
		case "RECURSIVE_CTE_NODE", "CTE_NODE":
			return nil, refuse("WITH (common table expressions) is not accepted")
		}
		return nil, refuse("only a plain SELECT is accepted, not %s", t)
	}
	// Every expression anywhere in the tree must be of an accepted class,
	// and the structured walk below must visit every one of them.
	total, selects, err := c.scan(node)
	if err != nil {
		return nil, err
	}
	if selects != 1 {
		return nil, refuse("subqueries are not accepted: join the datasets in the FROM clause")
	}
	if err := c.selectNode(node); err != nil {
		return nil, err
	}
	if c.visited != total {
		return nil, refuse("expression shape not understood (%d of %d expressions checked)", c.visited, total)
	}
	return node, nil
}

// scan counts the expressions and SELECT nodes in a tree and refuses
// expression classes outside acceptedClasses.
func (c *sqlChecker) scan(v any) (exprs, selects int, err error) {
	switch x := v.(type) {
	case map[string]any:
		if class, ok := x["class"].(string); ok {
			if !acceptedClass(class) {
				return 0, 0, refuse("%s%s", c.at(x), refusedClass(class))
			}
			exprs++
		}
		switch t, _ := x["type"].(string); t {
		case "SELECT_NODE":
			selects++
		case "SET_OPERATION_NODE":
			return 0, 0, refuse("UNION, INTERSECT and EXCEPT are not accepted")
		case "RECURSIVE_CTE_NODE", "CTE_NODE":
			return 0, 0, refuse("WITH (common table expressions) is not accepted")
		case "SUBQUERY":
			return 0, 0, refuse("%ssubqueries are not accepted: join the datasets in the FROM clause", c.at(x))
		case "TABLE_FUNCTION":
			return 0, 0, refuse("%stable functions (read_csv, read_parquet, glob, ...) are not accepted", c.at(x))
		}
		for _, e := range x {
			n, s, err := c.scan(e)
			if err != nil {
				return 0, 0, err
			}
			exprs, selects = exprs+n, selects+s
		}
	case []any:
		for _, e := range x {
			n, s, err := c.scan(e)
			if err != nil {
				return 0, 0, err
			}
			exprs, selects = exprs+n, selects+s
		}
	}
	return exprs, selects, nil
}

func (c *sqlChecker) selectNode(node map[string]any) error {
	for k, v := range node {
		if !selectKey(k) && !isEmpty(v) {
			return refuse("SELECT clause %q is not accepted", k)
		}
	}
	if cte, _ := node["cte_map"].(map[string]any); cte != nil && !isEmpty(cte["map"]) {
		return refuse("WITH (common table expressions) is not accepted")
	}
	if !isEmpty(node["sample"]) {
		return refuse("USING SAMPLE / TABLESAMPLE is not accepted")
	}
	if !isEmpty(node["qualify"]) {
		return refuse("QUALIFY is not accepted")
	}
	switch h := str(node, "aggregate_handling"); h {
	case "STANDARD_HANDLING", "FORCE_AGGREGATES":
	default:
		return refuse("aggregate handling %q is not accepted", h)
	}
	from, ok := node["from_table"].(map[string]any)
	if !ok {
		return refuse("the query has no FROM clause")
	}
	var conds []any
	if err := c.from(from, &conds); err != nil {
		return err
	}
	if len(c.tables) == 0 {
		return refuse("the query reads no dataset")
	}
	list, _ := node["select_list"].([]any)
	if len(list) == 0 {
		return refuse("empty select list")
	}
	for _, item := range list {
		o, ok := item.(map[string]any)
		if !ok {
			return refuse("malformed select list")
		}
		alias := str(o, "alias")
		if strings.HasPrefix(strings.ToLower(alias), hiddenPrefix) {
			return refuse("output names starting with %s are reserved", hiddenPrefix)
		}
		if alias != "" {
			c.aliases[strings.ToLower(alias)] = true
		}
	}
	for _, cond := range conds {
		if err := c.expr(cond, exprCtx{clause: "join condition", joinCond: true}); err != nil {
			return err
		}
	}
	for _, item := range list {
		if err := c.expr(item, exprCtx{clause: "select list"}); err != nil {
			return err
		}
	}
	if w := node["where_clause"]; !isEmpty(w) {
		if err := c.expr(w, exprCtx{clause: "WHERE"}); err != nil {
			return err
		}
	}
	groups, _ := node["group_expressions"].([]any)
	for _, g := range groups {
		if err := c.expr(g, exprCtx{clause: "GROUP BY"}); err != nil {
			return err
		}
	}
	if h := node["having"]; !isEmpty(h) {
		if err := c.expr(h, exprCtx{clause: "HAVING"}); err != nil {
			return err
		}
	}
	mods, _ := node["modifiers"].([]any)
	for _, mv := range mods {
		mod, ok := mv.(map[string]any)
		if !ok {
			return refuse("malformed modifier")
		}
		switch str(mod, "type") {
		case "ORDER_MODIFIER":
			orders, _ := mod["orders"].([]any)
			for _, ov := range orders {
				o, ok := ov.(map[string]any)
				if !ok {
					return refuse("malformed ORDER BY")
				}
				if err := c.expr(o["expression"], exprCtx{clause: "ORDER BY"}); err != nil {
					return err
				}
			}
		case "LIMIT_MODIFIER":
			for _, k := range []string{"limit", "offset"} {
				v := mod[k]
				if isEmpty(v) {
					continue
				}
				if o, ok := v.(map[string]any); !ok || str(o, "class") != "CONSTANT" {
					return refuse("LIMIT and OFFSET take constants")
				}
				c.visited++
			}
		case "DISTINCT_MODIFIER":
			return refuse("SELECT DISTINCT is not accepted: GROUP BY the columns")
		default:
			return refuse("modifier %s is not accepted", str(mod, "type"))
		}
	}
	if len(groups) == 0 && str(node, "aggregate_handling") != "FORCE_AGGREGATES" && !c.selAgg {
		return refuse("the query must aggregate: GROUP BY, or aggregates only in the select list")
	}
	return nil
}

// from checks a FROM clause, collecting its tables and join conditions.
func (c *sqlChecker) from(t map[string]any, conds *[]any) error {
	if !isEmpty(t["sample"]) {
		return refuse("TABLESAMPLE is not accepted")
	}
	switch typ := str(t, "type"); typ {
	case "BASE_TABLE":
		if str(t, "schema_name") != "" || str(t, "catalog_name") != "" {
			return refuse("table %q: name datasets without a schema or catalog", str(t, "table_name"))
		}
		if !isEmpty(t["at_clause"]) {
			return refuse("AT (time travel) is not accepted")
		}
		if !isEmpty(t["column_name_alias"]) {
			return refuse("table %q: column aliases in FROM are not accepted", str(t, "table_name"))
		}
		name := str(t, "table_name")
		var ds *collab.Dataset
		for _, id := range c.a.Reads {
			if strings.EqualFold(id, name) {
				ds = c.m.Dataset(id)
			}
		}
		if ds == nil || ds.Descriptor.Schema == nil {
			return refuse("table %q is not a dataset the analysis reads (%s)", name, strings.Join(c.a.Reads, ", "))
		}
		alias := str(t, "alias")
		if alias == "" {
			alias = name
		}
		for _, x := range c.tables {
			if strings.EqualFold(x.alias, alias) {
				return refuse("table alias %q is used twice", alias)
			}
		}
		c.tables = append(c.tables, &tableInst{alias: alias, ds: ds})
		return nil
	case "JOIN":
		if r := str(t, "ref_type"); r != "REGULAR" {
			return refuse("%s joins are not accepted: write JOIN ... ON", r)
		}
		switch j := str(t, "join_type"); j {
		case "INNER", "LEFT", "RIGHT", "OUTER":
		default:
			return refuse("%s joins are not accepted", j)
		}
		if b, _ := t["delim_flipped"].(bool); b || !isEmpty(t["duplicate_eliminated_columns"]) || str(t, "alias") != "" {
			return refuse("join shape not accepted")
		}
		for _, side := range []string{"left", "right"} {
			s, ok := t[side].(map[string]any)
			if !ok {
				return refuse("malformed join")
			}
			if err := c.from(s, conds); err != nil {
				return err
			}
		}
		using, _ := t["using_columns"].([]any)
		for _, u := range using {
			name, _ := u.(string)
			if err := c.usingColumn(name); err != nil {
				return err
			}
		}
		if cond := t["condition"]; !isEmpty(cond) {
			*conds = append(*conds, cond)
		} else if len(using) == 0 {
			return refuse("a join needs ON or USING")
		}
		return nil
	case "TABLE_FUNCTION":
		return refuse("table functions (read_csv, read_parquet, ...) are not accepted")
	case "SUBQUERY":
		return refuse("subqueries are not accepted: join the datasets in the FROM clause")
	case "EMPTY":
		return refuse("the query reads no dataset")
	default:
		return refuse("FROM %s is not accepted", typ)
	}
}

// usingColumn checks a USING column: a join column wherever it is an
// identity or join column, else an allowed column.
func (c *sqlChecker) usingColumn(name string) error {
	found := false
	for _, t := range c.tables {
		col := findColumn(t.ds.Descriptor.Schema, name)
		if col == nil {
			continue
		}
		found = true
		if col.Identity && !col.Join {
			return fmt.Errorf("%w: USING (%s): %s.%s is an identity column, not a join column", ErrIdentityOutput, name, t.ds.ID, col.Name)
		}
		if !col.Join && !c.pol.columns[strings.ToLower(t.ds.ID+"."+col.Name)] {
			return fmt.Errorf("%w: USING (%s): %s.%s is not an allowed column", ErrPolicyViolation, name, t.ds.ID, col.Name)
		}
	}
	if !found {
		return refuse("USING (%s): no such column", name)
	}
	return nil
}

func findColumn(s *table.Schema, name string) *table.Column {
	for i := range s.Columns {
		if strings.EqualFold(s.Columns[i].Name, name) {
			return &s.Columns[i]
		}
	}
	return nil
}

// colMatch is a column a reference may name.
type colMatch struct {
	t   *tableInst
	col *table.Column
}

func (m colMatch) String() string { return m.t.ds.ID + "." + m.col.Name }

func (m colMatch) sensitive() bool { return m.col.Identity || m.col.Join }

// resolve finds the columns a COLUMN_REF may name; none and alias true for
// a reference to a select-list alias.
func (c *sqlChecker) resolve(o map[string]any) (matches []colMatch, alias bool, err error) {
	raw, _ := o["column_names"].([]any)
	names := make([]string, len(raw))
	for i, r := range raw {
		names[i], _ = r.(string)
	}
	switch len(names) {
	case 1:
		for _, t := range c.tables {
			if col := findColumn(t.ds.Descriptor.Schema, names[0]); col != nil {
				matches = append(matches, colMatch{t, col})
			}
		}
		if len(matches) == 0 {
			if c.aliases[strings.ToLower(names[0])] {
				return nil, true, nil
			}
			return nil, false, refuse("unknown column %q", names[0])
		}
		return matches, false, nil
	case 2:
		for _, t := range c.tables {
			if strings.EqualFold(t.alias, names[0]) {
				col := findColumn(t.ds.Descriptor.Schema, names[1])
				if col == nil {
					return nil, false, refuse("unknown column %s.%s", names[0], names[1])
				}
				return []colMatch{{t, col}}, false, nil
			}
		}
		return nil, false, refuse("unknown table or alias %q in %s.%s", names[0], names[0], names[1])
	}
	return nil, false, refuse("column %q: write columns as alias.column", strings.Join(names, "."))
}

// columnRef checks a column reference outside a join condition and count.
func (c *sqlChecker) columnRef(o map[string]any, ctx exprCtx) error {
	matches, alias, err := c.resolve(o)
	if err != nil || alias {
		return err
	}
	for _, m := range matches {
		if m.sensitive() {
			kind := "a join"
			if m.col.Identity {
				kind = "an identity"
			}
			return fmt.Errorf("%w: %s: %s is %s column: it may appear only in a join condition (a.col = b.col) or as the argument of count", ErrIdentityOutput, ctx.clause, m, kind)
		}
		if !c.pol.columns[strings.ToLower(m.String())] {
			return fmt.Errorf("%w: %s: %s is not an allowed column of its owner's output policy", ErrPolicyViolation, ctx.clause, m)
		}
	}
	return nil
}

// joinColumn reports whether e is a reference to exactly one join column,
// and which table instance it belongs to.
func (c *sqlChecker) joinColumn(e any) (*tableInst, bool) {
	o, ok := e.(map[string]any)
	if !ok || str(o, "class") != "COLUMN_REF" {
		return nil, false
	}
	matches, alias, err := c.resolve(o)
	if err != nil || alias || len(matches) != 1 || !matches[0].col.Join {
		return nil, false
	}
	return matches[0].t, true
}

func (c *sqlChecker) expr(v any, ctx exprCtx) error {
	o, ok := v.(map[string]any)
	if !ok {
		return refuse("malformed expression in %s", ctx.clause)
	}
	c.visited++
	joinCond := ctx.joinCond
	ctx.joinCond = false
	switch class := str(o, "class"); class {
	case "CONSTANT":
		return nil
	case "COLUMN_REF":
		return c.columnRef(o, ctx)
	case "FUNCTION":
		return c.function(o, ctx)
	case "COMPARISON":
		if joinCond && str(o, "type") == "COMPARE_EQUAL" {
			l, lok := c.joinColumn(o["left"])
			r, rok := c.joinColumn(o["right"])
			if lok && rok && l != r {
				c.visited += 2
				return nil
			}
		}
		return c.exprs(ctx, o["left"], o["right"])
	case "CONJUNCTION":
		children, _ := o["children"].([]any)
		ctx.joinCond = joinCond && str(o, "type") == "CONJUNCTION_AND"
		return c.exprs(ctx, children...)
	case "OPERATOR":
		children, _ := o["children"].([]any)
		return c.exprs(ctx, children...)
	case "CASE":
		checks, _ := o["case_checks"].([]any)
		for _, cv := range checks {
			ck, ok := cv.(map[string]any)
			if !ok {
				return refuse("malformed CASE")
			}
			if err := c.exprs(ctx, ck["when_expr"], ck["then_expr"]); err != nil {
				return err
			}
		}
		if isEmpty(o["else_expr"]) {
			return nil
		}
		return c.expr(o["else_expr"], ctx)
	case "CAST", "COLLATE":
		return c.expr(o["child"], ctx)
	case "BETWEEN":
		return c.exprs(ctx, o["input"], o["lower"], o["upper"])
	default:
		return refuse("%s%s", c.at(o), refusedClass(class))
	}
}

func (c *sqlChecker) exprs(ctx exprCtx, es ...any) error {
	for _, e := range es {
		if err := c.expr(e, ctx); err != nil {
			return err
		}
	}
	return nil
}

func (c *sqlChecker) function(o map[string]any, ctx exprCtx) error {
	name := strings.ToLower(str(o, "function_name"))
	if str(o, "schema") != "" || str(o, "catalog") != "" {
		return refuse("function %s: name functions without a schema or catalog", name)
	}
	if b, _ := o["export_state"].(bool); b {
		return refuse("EXPORT_STATE is not accepted")
	}
	if !isEmpty(o["filter"]) {
		return refuse("aggregate FILTER clauses are not accepted")
	}
	if ob, _ := o["order_bys"].(map[string]any); ob != nil && !isEmpty(ob["orders"]) {
		return refuse("ordered aggregates are not accepted")
	}
	children, _ := o["children"].([]any)
	isOp, _ := o["is_operator"].(bool)
	if c.aggs[name] && !isOp {
		if ctx.inAgg {
			return refuse("nested aggregates are not accepted")
		}
		fn, ok := aggFunc(name)
		if !ok {
			return refuse("%saggregate %s is not accepted: use count, sum, avg, min or max", c.at(o), name)
		}
		if ctx.clause == "select list" {
			c.selAgg = true
		}
		if name == "count" && len(children) == 1 {
			if ref, ok := children[0].(map[string]any); ok && str(ref, "class") == "COLUMN_REF" {
				matches, alias, err := c.resolve(ref)
				if err != nil {
					return err
				}
				sensitive := false
				for _, m := range matches {
					sensitive = sensitive || m.sensitive()
				}
				if !alias && sensitive {
					if distinct, _ := o["distinct"].(bool); distinct {
						fn = collab.AggCountDistinctIdentities
					}
					if !c.pol.aggregates[fn] {
						return fmt.Errorf("%w: %s is not allowed by the output policies of the datasets read", ErrPolicyViolation, fn)
					}
					c.visited++
					return nil
				}
			}
		}
		if !c.pol.aggregates[fn] {
			return fmt.Errorf("%w: %s is not allowed by the output policies of the datasets read", ErrPolicyViolation, fn)
		}
		ctx.inAgg = true
		return c.exprs(ctx, children...)
	}
	if deniedFunc(name) {
		return refuse("%sfunction %s is not accepted", c.at(o), name)
	}
	return c.exprs(ctx, children...)
}

// str returns o[k] as a string, or "".
func str(o map[string]any, k string) string {
	s, _ := o[k].(string)
	return s
}

// isEmpty reports whether a tree value is absent: nil, false, "", an empty
// list or an empty object.
func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// maxExcerpt bounds the source text an error message quotes.
const maxExcerpt = 60

// at returns the source text of syntax-tree node o (quoteExcerpt), from its
// query_location to the end of its first parenthesised group or word, so
// that a refusal names the offending expression: read_csv('/etc/passwd'),
// p.*, getenv('HOME'). It returns "" when o has no position in the SQL.
func (c *sqlChecker) at(o map[string]any) string {
	n, ok := o["query_location"].(json.Number)
	if !ok {
		return ""
	}
	loc, err := n.Int64()
	if err != nil || loc < 0 || loc >= int64(len(c.a.SQL)) {
		return ""
	}
	s := c.a.SQL[loc:]
	depth, end := 0, len(s)
	var quote byte
scan:
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '"':
			quote = ch
		case ch == '(':
			depth++
		case ch == ')':
			if depth == 0 {
				end = i
				break scan
			}
			if depth--; depth == 0 {
				end = i + 1
				break scan
			}
		case depth == 0 && (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'):
			// A keyword or function name before a group (IN (SELECT
			// ...), EXISTS (...), f (x)) belongs with the group.
			rest := strings.TrimLeft(s[i:], " \t\n\r")
			if rest != "" && rest[0] == '(' && isWord(s[:i]) {
				i = len(s) - len(rest) - 1
				continue
			}
			end = i
			break scan
		case depth == 0 && (ch == ',' || ch == ';'):
			end = i
			break scan
		}
	}
	return quoteExcerpt(s[:end])
}

// isWord reports whether s is a non-empty run of ASCII letters, digits and
// underscores.
func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// quoteExcerpt returns s, cut to maxExcerpt bytes, as a Go-quoted string
// followed by ": ", or "" for an empty s. Quoting keeps another party's
// control characters off the terminal.
func quoteExcerpt(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > maxExcerpt {
		s = strings.ToValidUTF8(s[:maxExcerpt], "") + "..."
	}
	return fmt.Sprintf("%q: ", s)
}

// notSelect returns the first statement of sql that does not start with
// SELECT, for the message that refuses it; the split on semicolons skips
// quoted strings and identifiers but is otherwise rough, as it only names
// what DuckDB's parser already refused.
func notSelect(sql string) string {
	var quote byte
	start := 0
	for i := 0; i <= len(sql); i++ {
		if i < len(sql) {
			ch := sql[i]
			switch {
			case quote != 0:
				if ch == quote {
					quote = 0
				}
				continue
			case ch == '\'' || ch == '"':
				quote = ch
				continue
			case ch != ';':
				continue
			}
		}
		stmt := strings.TrimSpace(sql[start:i])
		if f := strings.Fields(stmt); len(f) > 0 && !strings.EqualFold(f[0], "SELECT") {
			return strings.Join(f, " ")
		}
		start = i + 1
	}
	return ""
}

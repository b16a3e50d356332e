// Package sqlcorpus is a corpus of statements that a read/write split must route right, with
// the server each must run on: the cases of issue 24 (statements that ran on a replica,
// written by a hostile user and an unlucky application) and the project's own finds. The
// classifier's test (pkg/mysql/sqlclass) reads it with the mode each case sets up, and
// mysql-proxy's test runs it end to end against a MariaDB primary and replica, checking
// where each statement ran and that the replica never diverges.
package sqlcorpus

// Functions the end-to-end run creates: FWrite inserts a row into Table (MODIFIES SQL DATA),
// FReads only reads (READS SQL DATA), FLies is declared READS SQL DATA and inserts a row.
const (
	Table  = "corpus_t" // (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64))
	FWrite = "f_write"
	FReads = "f_reads"
	FLies  = "f_lies"
)

// Where a statement must run.
const (
	Replica = "replica"
	Primary = "primary"
)

// Case is one statement.
type Case struct {
	Name string
	// Setup runs first, through the proxy on the same client connection; SQLMode and Charset
	// are what it leaves the session with ("" SQLMode: the server's default, not set).
	Setup   []string
	SQLMode string
	Charset string
	SQL     string
	// Where the statement must run end to end; Rows is how many rows it adds to Table on the
	// primary, exactly once.
	Where string
	Rows  int
	// Lies: the classifier sends it to a replica (a function declared READS SQL DATA that
	// writes); the replica's read-only session refuses it and it runs on the primary.
	Lies bool
	// Then runs after it on the same connection and must return Want (state the statement
	// made must be seen where the session goes next).
	Then, Want string
}

// Routing is the corpus.
var Routing = []Case{
	{Name: "plain read", SQL: "SELECT 1", Where: Replica},
	{Name: "strings and comments", SQL: "SELECT ';', '/*master*/', `x;y` /* ; */ FROM corpus_t -- ;\n", Where: Replica},
	{Name: "with", SQL: "WITH x AS (SELECT 1 AS a) SELECT a FROM x", Where: Replica},
	{Name: "read-only function", SQL: "SELECT f_reads()", Where: Replica},
	{Name: "qualified read-only function", SQL: "SELECT upyun.f_reads()", Where: Replica},
	{Name: "executable comment read", SQL: "/*!40101 SELECT 1 */", Where: Replica},
	{Name: "set statement read", SQL: "SET STATEMENT max_statement_time=10 FOR SELECT 1", Where: Replica},
	{Name: "help", SQL: "HELP 'select'", Where: Replica},
	{Name: "double quotes, quoting unknown", SQL: `SELECT "a" FROM corpus_t`, Where: Replica},
	{Name: "gbk text without a backslash", Setup: []string{"SET NAMES gbk"}, Charset: "gbk", SQL: "SELECT v FROM corpus_t WHERE v = '\xd6\xd0'", Where: Replica},

	{Name: "set statement write", SQL: "SET STATEMENT max_statement_time=100 FOR INSERT INTO corpus_t (v) VALUES ('set statement')", Where: Primary, Rows: 1},
	{Name: "set and insert as one multi-statement", SQL: "SET @a = 1; INSERT INTO corpus_t (v) VALUES ('multi')", Where: Primary, Rows: 1, Then: "SELECT @a", Want: "1"},
	{Name: "set from a writing function", SQL: "SET @x = (SELECT f_write('set x'))", Where: Primary, Rows: 1, Then: "SELECT @x", Want: "1"},
	{Name: "read-only transaction in a multi-statement", SQL: "START TRANSACTION READ ONLY; COMMIT; INSERT INTO corpus_t (v) VALUES ('ro multi')", Where: Primary, Rows: 1},
	{Name: "no backslash escapes", Setup: []string{"SET sql_mode = 'NO_BACKSLASH_ESCAPES'"}, SQLMode: "NO_BACKSLASH_ESCAPES",
		SQL: `SELECT '\'; INSERT INTO corpus_t (v) VALUES ('nbe'); -- '`, Where: Primary, Rows: 1},
	{Name: "ansi quotes", Setup: []string{"SET sql_mode = 'ANSI_QUOTES'"}, SQLMode: "ANSI_QUOTES",
		SQL: `SELECT 1 AS "\"; INSERT INTO corpus_t (v) VALUES ('ansi'); -- "`, Where: Primary, Rows: 1},
	{Name: "gbk backslash", Setup: []string{"SET NAMES gbk"}, Charset: "gbk",
		SQL: "SELECT '\xbf\\'; INSERT INTO corpus_t (v) VALUES ('gbk'); -- '", Where: Primary, Rows: 1},
	{Name: "mariadb executable comment", SQL: "SELECT @@server_id /*M!100000 , f_write('exec comment') */", Where: Primary, Rows: 1},
	{Name: "mariadb executable comment without a version", SQL: "SELECT @@server_id /*M! , f_write('exec comment 2') */", Where: Primary, Rows: 1},
	{Name: "writing function", SQL: "SELECT f_write('select')", Where: Primary, Rows: 1},
	{Name: "writing function in values", SQL: "VALUES (f_write('values'))", Where: Primary, Rows: 1},
	{Name: "writing function in a cte", SQL: "WITH x AS (SELECT f_write('cte') AS a) SELECT a FROM x", Where: Primary, Rows: 1},
	{Name: "writing function via do", SQL: "DO f_write('do')", Where: Primary, Rows: 1},
	{Name: "analyze runs the statement", SQL: "ANALYZE SELECT f_write('analyze')", Where: Primary, Rows: 1},
	{Name: "set statement lifting read-only", SQL: "SET STATEMENT tx_read_only=0 FOR SELECT f_lies('lift')", Where: Primary, Rows: 1},
	{Name: "a function that lies", SQL: "SELECT f_lies('lies')", Where: Primary, Rows: 1, Lies: true},
	{Name: "locking read", SQL: "SELECT id FROM corpus_t LIMIT 1 FOR UPDATE", Where: Primary},
	{Name: "shared lock", SQL: "SELECT id FROM corpus_t LIMIT 1 LOCK IN SHARE MODE", Where: Primary},
	{Name: "into a variable", SQL: "SELECT 7 INTO @y", Where: Primary, Then: "SELECT @y", Want: "7"},
	{Name: "assignment in a query", SQL: "SELECT @z := 8", Where: Primary, Then: "SELECT @z", Want: "8"},
	{Name: "last insert id", SQL: "SELECT LAST_INSERT_ID()", Where: Primary},
	{Name: "unknown function", SQL: "SELECT no_such_function()", Where: Primary},
	{Name: "unknown statement", SQL: "FROBNICATE corpus_t", Where: Primary},
	{Name: "use in a multi-statement", SQL: "SELECT 1; USE mysql", Where: Primary, Then: "SELECT DATABASE()", Want: "mysql"},
}

package sqlclass

import "strings"

// builtins are MariaDB's built-in functions, and the keywords and type names that a '(' may
// follow without a function being called. A name followed by '(' that is in neither list is
// taken for a stored function (or a UDF), which may write: the session sends the statement to
// the primary unless the function is known not to modify data. A built-in missing here only
// costs a read on the primary, never a write on a replica.
var builtins = words(`
abs acos adddate addtime aes_decrypt aes_encrypt any_value area asbinary ascii asin astext
aswkb aswkt atan atan2 avg benchmark bin binlog_gtid_pos bit_and bit_count bit_length bit_or
bit_xor boundary buffer cast ceil ceiling centroid char char_length character_length charset
chr coalesce coercibility collation column_add column_check column_create column_delete
column_exists column_get column_json column_list compress concat concat_ws connection_id
contains conv convert convert_tz convexhull cos cot count crc32 crc32c crosses cume_dist
curdate current_date current_role current_time current_timestamp current_user curtime
database date date_add date_format date_sub datediff day dayname dayofmonth dayofweek
dayofyear decode decode_histogram default degrees dense_rank des_decrypt des_encrypt
dimension disjoint distance elt encode encrypt endpoint envelope equals exp export_set
exteriorring extract extractvalue field find_in_set first_value floor format
format_pico_time found_rows from_base64 from_days from_unixtime geomcollfromtext
geomcollfromwkb geometrycollection geometrycollectionfromtext geometrycollectionfromwkb
geometryfromtext geometryfromwkb geometryn geometrytype geomfromtext geomfromwkb get_format
get_lock glength greatest group_concat hex hour if ifnull inet6_aton inet6_ntoa inet_aton
inet_ntoa insert instr interiorringn intersects is_free_lock is_ipv4 is_ipv4_compat
is_ipv4_mapped is_ipv6 is_used_lock isclosed isempty isnull isring issimple json_array
json_array_append json_array_insert json_array_intersect json_arrayagg json_compact
json_contains json_contains_path json_depth json_detailed json_equals json_exists
json_extract json_insert json_key_value json_keys json_length json_loose json_merge
json_merge_patch json_merge_preserve json_normalize json_object json_object_filter_keys
json_object_to_array json_objectagg json_overlaps json_pretty json_query json_quote
json_remove json_replace json_schema_valid json_search json_set json_table json_type
json_unquote json_valid json_value kdf lag last_day last_insert_id last_value lastval lcase
lead least left length linefromtext linefromwkb linestring linestringfromtext
linestringfromwkb ln load_file localtime localtimestamp locate log log10 log2 lower lpad
ltrim make_set makedate maketime master_gtid_wait master_pos_wait match max mbrcontains
mbrcoveredby mbrdisjoint mbrequal mbrequals mbrintersects mbroverlaps mbrtouches mbrwithin
md5 median microsecond mid min minute mlinefromtext mlinefromwkb mod month monthname
mpointfromtext mpointfromwkb mpolyfromtext mpolyfromwkb multilinestring
multilinestringfromtext multilinestringfromwkb multipoint multipointfromtext
multipointfromwkb multipolygon multipolygonfromtext multipolygonfromwkb name_const
natural_sort_key nextval now nth_value ntile nullif numgeometries numinteriorrings
numpoints oct octet_length old_password ord overlaps password percent_rank
percentile_cont percentile_disc period_add period_diff pi point pointfromtext
pointfromwkb pointn pointonsurface polyfromtext polyfromwkb polygon polygonfromtext
polygonfromwkb position pow power quarter quote radians rand random_bytes rank regexp_instr
regexp_replace regexp_substr release_all_locks release_lock repeat replace reverse right
round row_count row_number rpad rtrim schema sec_to_time second sequence setval sformat
sha sha1 sha2 sign sin sleep soundex space sqrt srid st_area st_asbinary st_asgeojson
st_astext st_aswkb st_aswkt st_boundary st_buffer st_centroid st_collect st_contains
st_convexhull st_crosses st_difference st_dimension st_disjoint st_distance
st_distance_sphere st_endpoint st_envelope st_equals st_exteriorring st_geohash
st_geomcollfromtext st_geomcollfromwkb st_geometrycollectionfromtext
st_geometrycollectionfromwkb st_geometryfromtext st_geometryfromwkb st_geometryn
st_geometrytype st_geomfromgeojson st_geomfromtext st_geomfromwkb st_interiorringn
st_intersection st_intersects st_isclosed st_isempty st_isring st_issimple st_isvalid
st_latfromgeohash st_length st_linefromtext st_linefromwkb st_linestringfromtext
st_linestringfromwkb st_longfromgeohash st_mlinefromtext st_mlinefromwkb st_mpointfromtext
st_mpointfromwkb st_mpolyfromtext st_mpolyfromwkb st_multilinestringfromtext
st_multilinestringfromwkb st_multipointfromtext st_multipointfromwkb
st_multipolygonfromtext st_multipolygonfromwkb st_numgeometries st_numinteriorrings
st_numpoints st_overlaps st_pointfromgeohash st_pointfromtext st_pointfromwkb st_pointn
st_pointonsurface st_polyfromtext st_polyfromwkb st_polygonfromtext st_polygonfromwkb
st_relate st_simplify st_srid st_startpoint st_symdifference st_touches st_union
st_validate st_within st_x st_y startpoint std stddev stddev_pop stddev_samp str_to_date
strcmp subdate substr substring substring_index subtime sum sys_guid sysdate
system_user tan time time_format time_to_sec timediff timestamp timestampadd
timestampdiff to_base64 to_char to_days to_seconds touches trim trim_oracle truncate
ucase uncompress uncompressed_length unhex unix_timestamp updatexml upper user utc_date
utc_time utc_timestamp uuid uuid_short values var_pop var_samp variance version week
weekday weekofyear weight_string within x y year yearweek
`)

// notFunctions are keywords and type names that a '(' may follow.
var notFunctions = words(`
against all and any as asc between binary both by case char collate columns cross date
datetime dec decimal default desc distinct div do double else end escape except exists
fixed float following for force from group having ignore in index inner int integer
intersect interval into is join key lateral leading left like limit match mod national
natural nchar nested not numeric of offset on or order ordinality outer over partition
path preceding primary range real recursive regexp returning right rlike row rows select
signed some sounds straight_join then time timestamp to trailing union unique unsigned
using value values varbinary varchar when where window with xor year
`)

func words(s string) map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

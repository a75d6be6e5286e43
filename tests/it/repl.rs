//! The interactive shell, driven through a real pseudo-terminal.

use std::process::Command;

use rexpect::session::{PtySession, spawn_command};

use crate::support::*;

const TIMEOUT_MS: u64 = 60_000;

fn shell(home: &std::path::Path) -> PtySession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowsql"));
    command
        .arg(bucket())
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env("TERM", "xterm")
        .env("COLUMNS", "200");
    let mut session = spawn_command(command, Some(TIMEOUT_MS)).expect("spawn flowsql in a pty");
    session.exp_string("\\? for help").expect("banner");
    session
}

/// Types a line and presses Enter.
fn enter(session: &mut PtySession, line: &str) {
    session.send(line).unwrap();
    session.send("\r").unwrap();
    session.flush().unwrap();
}

#[test]
fn multi_line_statements_commands_errors_and_history() {
    let home = tempfile::tempdir().unwrap();
    let mut session = shell(home.path());
    let want = read_independently(&bucket()).len();

    // A statement over two lines runs once the `;` arrives.
    enter(&mut session, "SELECT count(*) AS n");
    enter(&mut session, "FROM vpc_flow_logs;");
    session.exp_string(&format!("| {want} |")).unwrap();
    session.exp_string("1 row(s) in").unwrap();

    enter(&mut session, "\\d");
    session.exp_string("| vpc_flow_logs").unwrap();
    enter(&mut session, "\\d vpc_flow_logs");
    session.exp_string("| recorded ").unwrap();
    session.exp_string("| pkt_srcaddr ").unwrap();
    session
        .exp_string("recorded: whether a flow-log format")
        .unwrap();
    // The name as SQL takes it: unquoted, any case.
    enter(&mut session, "\\d VPC_Flow_Logs");
    session.exp_string("| pkt_srcaddr ").unwrap();
    session
        .exp_string("recorded: whether a flow-log format")
        .unwrap();

    // An error does not end the shell; the next statement runs.
    enter(&mut session, "SELECT no_such_column FROM vpc_flow_logs;");
    session.exp_string("error:").unwrap();
    session.exp_string("no_such_column").unwrap();
    enter(&mut session, "SELECT 40 + 2 AS answer;");
    session.exp_string("|     42 |").unwrap();

    // A statement that does not parse gets its error and a fresh prompt:
    // the next one typed runs on its own.
    enter(&mut session, "SELEC oops;");
    session.exp_string("error:").unwrap();
    session.exp_string("flowsql> ").unwrap();
    enter(&mut session, "SELECT 41 + 1 AS again;");
    session.exp_string("|    42 |").unwrap();

    // Completion: `srcad` + Tab becomes `srcaddr`.
    session.send("SELECT DISTINCT srcad").unwrap();
    session.send("\t").unwrap();
    enter(
        &mut session,
        " FROM vpc_flow_logs WHERE srcaddr LIKE '2001:%';",
    );
    session
        .exp_string("2001:db8:1234:a100:8d6e:3477:df66:f105")
        .unwrap();

    // Output format and saved queries.
    enter(&mut session, "\\format csv");
    // rustyline discards keys typed before the next prompt; wait for it.
    session.exp_string("format csv").unwrap();
    session.exp_string("flowsql> ").unwrap();
    enter(
        &mut session,
        "\\run traffic_from_source src_addr=172.31.16.139",
    );
    session
        .exp_string("dstaddr,dstport,protocol,action,flows,bytes")
        .unwrap();

    enter(&mut session, "\\q");
    session.exp_eof().unwrap();

    let history = std::fs::read_to_string(home.path().join(".flowsql_history")).unwrap();
    assert!(history.contains("SELECT 40 + 2 AS answer;"), "{history}");
    assert!(history.contains("SELEC oops;"), "{history}");
    assert!(history.contains("\\format csv"), "{history}");
}

#[test]
fn cache_shows_and_clears_what_the_session_cached() {
    let home = tempfile::tempdir().unwrap();
    let mut session = shell(home.path());
    enter(&mut session, "SELECT count(*) FROM vpc_flow_logs;");
    session.exp_string("1 row(s) in").unwrap();
    let summary = session.exp_string(" object(s)").unwrap();
    let objects: usize = summary
        .rsplit("read ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    enter(&mut session, "SELECT count(*) FROM vpc_flow_logs;");
    session
        .exp_string(&format!("({objects} from the local cache)"))
        .unwrap();
    enter(&mut session, "\\cache");
    session.exp_string("local cache: ").unwrap();
    session
        .exp_string(&format!("{objects} object(s), "))
        .unwrap();
    session
        .exp_string(&format!("50% of {} object read(s)", 2 * objects))
        .unwrap();
    enter(&mut session, "\\cache clear");
    session
        .exp_string(&format!("cleared the local cache: {objects} object(s)"))
        .unwrap();
    enter(&mut session, "\\q");
    session.exp_eof().unwrap();
}

#[test]
fn chart_draws_the_last_result_within_the_terminal() {
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowsql"));
    command
        .arg(bucket())
        .env("HOME", home.path())
        .env("TERM", "xterm")
        .env("LANG", "C.UTF-8")
        .env("COLUMNS", "60")
        .env("LINES", "14");
    let mut session = spawn_command(command, Some(TIMEOUT_MS)).expect("spawn flowsql in a pty");
    session.exp_string("\\? for help").expect("banner");

    enter(&mut session, "\\chart");
    session.exp_string("no result to chart yet").unwrap();
    enter(
        &mut session,
        "SELECT srcaddr, sum(bytes) AS bytes FROM vpc_flow_logs GROUP BY 1 ORDER BY 2 DESC LIMIT 20;",
    );
    session.exp_string("row(s) in").unwrap();
    enter(&mut session, "\\chart");
    session.exp_string(" bytes\r\n").unwrap();
    // rexpect reads the terminal as Latin-1: back to the UTF-8 bytes.
    let drawn = session.exp_string("flowsql> ").unwrap();
    let drawn = String::from_utf8(drawn.chars().map(|c| c as u8).collect()).unwrap();
    let lines: Vec<&str> = drawn.lines().filter(|l| l.contains('│')).collect();
    // 20 rows do not fit in 14 lines: the chart says how many it left out.
    assert!(!lines.is_empty() && lines.len() < 14, "{drawn}");
    assert!(drawn.contains("more row(s) not shown"), "{drawn}");
    for line in lines {
        assert!(line.trim_end().chars().count() <= 60, "{line:?}");
    }
    enter(&mut session, "\\q");
    session.exp_eof().unwrap();
}

#[test]
fn ctrl_c_cancels_a_long_query_and_the_shell_goes_on() {
    let home = tempfile::tempdir().unwrap();
    let mut session = shell(home.path());
    // 45^6 (8.3 billion) rows from the flow-log table: runs for minutes.
    enter(
        &mut session,
        "SELECT count(*) FROM vpc_flow_logs a, vpc_flow_logs b, vpc_flow_logs c, vpc_flow_logs d, vpc_flow_logs e, vpc_flow_logs f;",
    );
    // The progress line appears once the statement has run for half a second.
    session.exp_regex(r"\d+/\d+ objects, ").unwrap();
    session.send_control('c').unwrap();
    session.exp_string("cancelled").unwrap();
    enter(&mut session, "SELECT 6 * 7 AS answer;");
    session.exp_string("|     42 |").unwrap();
    // Ctrl-D leaves.
    session.send_control('d').unwrap();
    session.exp_eof().unwrap();
}

//! `supervisor`: the command line of the autoresearch experiment engine.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use autoresearch_supervisor::cli::{Cli, Command, QueueAction};
use autoresearch_supervisor::commands::{
    ask, export, final_report, list, queue, queue_add, reanalyze, repair, retry, run, status, stop,
};
use autoresearch_supervisor::exit::{Exit, code_of};
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if !matches!(
        cli.command,
        None | Some(Command::Run(_)) | Some(Command::Serve { .. })
    ) {
        // Printing commands end quietly when the reader goes away (`supervisor status wd | head`)
        // instead of panicking in `println!`. `run`, `serve` and the session keep SIGPIPE
        // ignored.
        // SAFETY: restoring a signal's default disposition before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code_of(&e) as u8)
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    let Some(command) = cli.command else {
        let Some(workdir) = cli.workdir else {
            return Err(Exit::bad_input(
                "give a workdir for the interactive session (`supervisor <workdir>`) or a subcommand; see `supervisor --help`",
            ));
        };
        return autoresearch_supervisor::interactive::run(&workdir);
    };
    match command {
        Command::Run(args) => run::run(&args),
        Command::Status { workdir, json } => {
            let report = status::gather(&workdir).map_err(Exit::bad_input_err)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", status::format_human(&report));
            }
            Ok(0)
        }
        Command::Show { workdir, id } => {
            autoresearch_supervisor::commands::require_workdir(&workdir)
                .map_err(Exit::bad_input_err)?;
            let wd = autoresearch_adapters::workdir::Workdir::new(&workdir);
            if !autoresearch_adapters::agent::journal::is_safe_node_id(&id)
                || !wd.node_dir(&id).is_dir()
            {
                return Err(Exit::bad_input(format!(
                    "there is no experiment {id:?} in {}: give a node id, one of the folder \
                     names under engine/nodes/ (`supervisor export {}` lists them)",
                    workdir.display(),
                    workdir.display()
                )));
            }
            let text = autoresearch_supervisor::interactive::inspect::show(&workdir, &id)
                .map_err(Exit::bad_input_err)?;
            print!("{text}");
            Ok(0)
        }
        Command::Queue { workdir, action } => match action.unwrap_or(QueueAction::List) {
            QueueAction::List => {
                let entries = queue::list(&workdir).map_err(Exit::bad_input_err)?;
                print!("{}", queue::format_list(&entries));
                Ok(0)
            }
            QueueAction::Bump { id, priority } => {
                println!(
                    "{}",
                    queue::bump(&workdir, &id, priority).map_err(Exit::bad_input_err)?
                );
                Ok(0)
            }
            QueueAction::Drop { id } => {
                println!(
                    "{}",
                    queue::drop(&workdir, &id).map_err(Exit::bad_input_err)?
                );
                Ok(0)
            }
            QueueAction::Add(args) => {
                println!("{}", queue_add::add(&workdir, &args.request())?);
                Ok(0)
            }
        },
        Command::Retry {
            workdir,
            ids,
            all_failed,
        } => {
            print!("{}", retry::retry(&workdir, &ids, all_failed)?);
            Ok(0)
        }
        Command::Reanalyze { workdir, metric } => {
            print!("{}", reanalyze::run(&workdir, metric.as_deref())?);
            Ok(0)
        }
        Command::Stop { workdir, timeout_s } => {
            autoresearch_supervisor::commands::require_workdir(&workdir)
                .map_err(Exit::bad_input_err)?;
            println!("{}", stop::stop(&workdir, Duration::from_secs(timeout_s))?);
            Ok(0)
        }
        Command::Report {
            workdir,
            agent,
            agent_flags,
        } => {
            if agent || agent_flags.given() {
                let command = format!("supervisor report {} --agent", workdir.display());
                final_report::write(&workdir, &agent_flags, &command, &mut |l| println!("{l}"))?;
                return Ok(0);
            }
            autoresearch_supervisor::commands::require_workdir(&workdir)
                .map_err(Exit::bad_input_err)?;
            let path = autoresearch_supervisor::render::render_report(&workdir)?;
            println!("wrote {}", path.display());
            Ok(0)
        }
        Command::Ask {
            workdir,
            question,
            yes,
            agent_flags,
        } => ask::run_cli(&workdir, &question, yes, &agent_flags),
        Command::Render { workdir } => {
            autoresearch_supervisor::commands::require_workdir(&workdir)
                .map_err(Exit::bad_input_err)?;
            let report = autoresearch_supervisor::render::render_all(&workdir)?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            for f in &report.written {
                println!("wrote {}", f.display());
            }
            println!(
                "{} nodes rendered in {} ms",
                report.nodes,
                report.timings.total.as_millis()
            );
            Ok(0)
        }
        Command::Export {
            workdir,
            format,
            output,
        } => {
            autoresearch_supervisor::commands::require_workdir(&workdir)
                .map_err(Exit::bad_input_err)?;
            let message = export::run(&workdir, format, output.as_deref())?;
            if !message.is_empty() {
                eprintln!("{message}");
            }
            Ok(0)
        }
        Command::Repair { workdir, dry_run } => {
            autoresearch_supervisor::commands::require_workdir(&workdir)
                .map_err(Exit::bad_input_err)?;
            print!("{}", repair::repair(&workdir, dry_run)?);
            Ok(0)
        }
        Command::Serve {
            path,
            bind,
            port,
            allow_control,
        } => autoresearch_supervisor::serve::run(&autoresearch_supervisor::serve::ServeOptions {
            path: path.unwrap_or_else(|| ".".into()),
            bind,
            port,
            allow_control,
        }),
        Command::List { dir } => {
            let dir = dir.unwrap_or_else(|| ".".into());
            print!(
                "{}",
                list::format_list(&list::list(&dir).map_err(Exit::bad_input_err)?)
            );
            Ok(0)
        }
    }
}

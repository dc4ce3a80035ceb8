"""The `bench --site SITE backup-manager ...` command group.

The only module that writes to the terminal; everything it does is done by the same
functions Desk and the scheduler use.
"""

import json
import sys
import time
from contextlib import contextmanager

import click
from frappe.commands import get_site, pass_context


@contextmanager
def connected_site(context):
	import frappe

	site = get_site(context)
	frappe.init(site=site)
	frappe.connect()
	try:
		yield site
	except frappe.ValidationError as exc:
		# Refusals raised with frappe.throw: show the message, not a traceback.
		fail(frappe.utils.strip_html(str(exc)))
	finally:
		frappe.destroy()


def fail(message: str):
	click.secho(message, fg="red", err=True)
	sys.exit(1)


@click.group("backup-manager")
def backup_manager():
	"""Backup Manager: run, list, verify and prune backups."""


@backup_manager.command("run")
@click.option("--policy", required=True, help="Name of the Backup Policy to run")
@click.option(
	"--progress-interval",
	default=10.0,
	show_default=True,
	help="Without a terminal: seconds between progress lines on stderr (phase changes always print)",
)
@pass_context
def run(context, policy, progress_interval):
	"""Run a policy now, in this process; prints the Backup Log and exits non-zero on failure."""
	import frappe

	from backup_manager.jobs import execute_run, start_run

	with connected_site(context):
		if not frappe.db.exists("Backup Policy", policy):
			fail(f"Backup Policy {policy!r} does not exist. See: bench --site SITE backup-manager policies")
		# Progress goes to stderr: stdout keeps the one result line that scripts read.
		with progress_display(sys.stderr.isatty(), interval=progress_interval):
			log = execute_run(start_run(policy=policy, trigger="CLI", enqueue=False))
		colour = "green" if log.status == "Success" else "red"
		click.secho(
			f"{log.name}\t{log.status}\t{log.total_size_human or ''}\t{log.backup_dir or ''}", fg=colour
		)
		if log.status != "Success":
			fail(f"{log.error_class or log.status}: {log.error_message or log.skip_reason or ''}")


@contextmanager
def progress_display(is_tty: bool, *, interval: float):
	"""Show a run's progress: a redrawn bar on a terminal, plain periodic lines otherwise."""
	from backup_manager.core.progress import DONE, format_line
	from backup_manager.progress import add_listener, remove_listener

	state = {"phase": None, "printed_at": 0.0, "drawn": False}

	def show(snapshot: dict):
		now = time.monotonic()
		new_phase = snapshot["label"] != state["phase"]
		if is_tty:
			if new_phase and state["drawn"]:
				click.echo("", err=True)
			click.echo("\r" + format_line(snapshot) + "\033[K", nl=False, err=True)
			state["drawn"] = snapshot["phase"] != DONE
			if snapshot["phase"] == DONE:
				click.echo("", err=True)
		elif new_phase or now - state["printed_at"] >= interval:
			click.echo(f"progress: {format_line(snapshot).strip()}", err=True)
			state["printed_at"] = now
		state["phase"] = snapshot["label"]

	add_listener(show)
	try:
		yield
	finally:
		remove_listener(show)
		if is_tty and state["drawn"]:
			click.echo("", err=True)


@backup_manager.command("init")
@click.option("--name", default="Daily", show_default=True, help="Name of the policy to create")
@pass_context
def init(context, name):
	"""Create a sensible enabled daily policy, unless one with that name exists."""
	import frappe

	with connected_site(context):
		if frappe.db.exists("Backup Policy", name):
			click.echo(f"Backup Policy {name} already exists")
			return
		policy = frappe.get_doc(
			{
				"doctype": "Backup Policy",
				"policy_name": name,
				"enabled": 1,
				"frequency": "Daily",
				"backup_time": "02:00:00",
				"with_files": 1,
				"keep_last": 7,
				"keep_daily": 7,
				"keep_weekly": 4,
				"keep_monthly": 12,
				"notify_on_failure": 1,
			}
		).insert()
		frappe.db.commit()
		click.secho(f"Created Backup Policy {policy.name}; next run {policy.next_run_at}", fg="green")


@backup_manager.command("policies")
@pass_context
def policies(context):
	"""List Backup Policies with their schedule and last status."""
	import frappe

	with connected_site(context):
		for policy in frappe.get_all(
			"Backup Policy",
			fields=["name", "enabled", "frequency", "cron_expression", "next_run_at", "last_status"],
			order_by="name asc",
		):
			click.echo(
				"\t".join(
					str(value or "")
					for value in (
						policy.name,
						"enabled" if policy.enabled else "disabled",
						policy.frequency if policy.frequency != "Cron" else f"cron {policy.cron_expression}",
						policy.next_run_at,
						policy.last_status,
					)
				)
			)


@backup_manager.command("list")
@click.option("--policy", help="Only this policy's runs")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@pass_context
def list_runs(context, policy, limit, as_json):
	"""List recent backup runs."""
	import frappe

	with connected_site(context):
		runs = frappe.get_all(
			"Backup Log",
			filters={"policy": policy} if policy else {},
			fields=[
				"name",
				"policy",
				"trigger",
				"status",
				"started_at",
				"duration",
				"total_size_human",
				"keep_forever",
				"local_files_deleted",
			],
			order_by="creation desc",
			limit=limit,
		)
		if as_json:
			click.echo(json.dumps(runs, default=str, indent=1))
			return
		for run_ in runs:
			flags = ("pinned " if run_.keep_forever else "") + ("pruned" if run_.local_files_deleted else "")
			click.echo(
				f"{run_.name}\t{run_.policy}\t{run_.trigger}\t{run_.status}\t{run_.started_at or ''}\t"
				f"{run_.total_size_human or ''}\t{flags}".rstrip()
			)


def get_log_or_fail(backup_log: str):
	import frappe

	if not frappe.db.exists("Backup Log", backup_log):
		fail(f"Backup Log {backup_log!r} does not exist. See: bench --site SITE backup-manager list")
	return frappe.get_doc("Backup Log", backup_log)


@backup_manager.command("verify")
@click.argument("backup_log")
@click.option("--offsite", is_flag=True, help="Also check the objects in every destination")
@click.option("--read-back", is_flag=True, help="With --offsite: download and hash every object")
@pass_context
def verify(context, backup_log, offsite, read_back):
	"""Re-check a backup: local sizes, sha256, gzip and tar; with --offsite every destination too."""
	from backup_manager.verification import verify_local_backup, verify_offsite_backup

	with connected_site(context):
		log = get_log_or_fail(backup_log)
		checks = [] if (offsite and log.local_files_deleted) else verify_local_backup(log)
		if offsite:
			checks += verify_offsite_backup(log, read_back=read_back)
		for check in checks:
			click.secho(
				f"{'OK ' if check.ok else 'BAD'}\t{check.kind}\t{check.file_name}\t{check.message}",
				fg="green" if check.ok else "red",
			)
		if not checks or not all(check.ok for check in checks):
			fail(f"Backup {backup_log} failed verification")


@backup_manager.command("download")
@click.argument("backup_log")
@click.option(
	"--to", "to_dir", required=True, type=click.Path(file_okay=False), help="Folder to download into"
)
@click.option("--destination", help="Backup Destination to read from (default: the first complete one)")
@pass_context
def download(context, backup_log, to_dir, destination):
	"""Download a backup's artifacts from a destination and verify their sha256 against the Backup Log."""
	import os

	from backup_manager.core import offsite
	from backup_manager.offsite import get_log_destination

	with connected_site(context):
		log = get_log_or_fail(backup_log)
		if not log.manifest:
			fail(
				f"Backup Log {backup_log} has no manifest (status {log.status}): there is nothing to download."
			)
		target = get_log_destination(log, destination)
		try:
			# The Backup Log is trusted, the bucket is not: every file is checked against the log's
			# manifest, and the bucket's manifest.json is not used.
			manifest = offsite.download_backup(
				target.get_backend(),
				prefix=target.path_prefix or "",
				site=log.site,
				backup_id=log.backup_id,
				to_dir=os.path.abspath(to_dir),
				manifest=log.get_manifest(),
			)
		except Exception as exc:
			fail(f"Download failed: {exc}")
		for artifact in manifest.artifacts:
			click.secho(
				f"OK\t{artifact.kind}\t{os.path.join(os.path.abspath(to_dir), artifact.file_name)}\tsha256 {artifact.sha256}",
				fg="green",
			)


@backup_manager.command("retry-upload")
@click.argument("backup_log")
@pass_context
def retry_upload(context, backup_log):
	"""Retry a backup's failed offsite uploads now, in this process."""
	from backup_manager.offsite import retry_upload as retry

	with connected_site(context):
		log = get_log_or_fail(backup_log)
		status = retry(log.name, enqueue=False)
		click.secho(f"{log.name}\t{status}", fg="green" if status == "Success" else "red")
		if status != "Success":
			fail("Upload still incomplete; see the Backup Log")


@backup_manager.command("test-destination")
@click.argument("destination")
@click.option(
	"--accept-host-key",
	"fingerprint",
	default="",
	help="SFTP: pin the server's host key if its fingerprint is this (SHA256:..., shown by a first test)",
)
@pass_context
def test_destination(context, destination, fingerprint):
	"""Check a Backup Destination: reachable, a probe can be written, read and deleted (SFTP: host key first)."""
	import frappe

	from backup_manager.offsite import accept_host_key, test_destination_connection

	with connected_site(context):
		if not frappe.db.exists("Backup Destination", destination):
			fail(f"Backup Destination {destination!r} does not exist")
		if fingerprint:
			try:
				accept_host_key(destination, fingerprint)
			except frappe.ValidationError as exc:
				fail(str(exc))
			frappe.db.commit()
			click.secho(f"Accepted host key {fingerprint}", fg="green")
		report = test_destination_connection(destination)
		if report.get("host_key_to_accept"):
			click.echo(
				f"The server offers host key {report['host_key_to_accept']}. If it is the server's (ask its "
				f"administrator: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), accept it with "
				f"--accept-host-key {report['host_key_to_accept']}"
			)
		for check in report["checks"]:
			click.secho(
				f"{'OK ' if check['ok'] else 'BAD'}\t{check['name']}\t{check['message']}",
				fg="green" if check["ok"] else "red",
			)
		if not report["ok"]:
			fail("Connection test failed")


@backup_manager.command("prune")
@click.option("--policy", required=True, help="Name of the Backup Policy")
@click.option("--dry-run", is_flag=True, help="Print the verdicts, delete nothing")
@pass_context
def prune(context, policy, dry_run):
	"""Apply the policy's local retention (oldest first); --dry-run only prints the verdicts."""
	import frappe

	from backup_manager.retention import apply_local_retention

	with connected_site(context):
		if not frappe.db.exists("Backup Policy", policy):
			fail(f"Backup Policy {policy!r} does not exist")
		verdicts = apply_local_retention(frappe.get_doc("Backup Policy", policy), dry_run=dry_run)
		for verdict in verdicts:
			action = "keep " if verdict.keep else ("would prune" if dry_run else "pruned")
			click.echo(f"{verdict.backup.id}\t{verdict.backup.created_at}\t{action}\t{verdict.reason}")
		if not verdicts:
			click.echo("No local backups of this policy.")


@backup_manager.command("restore-plan")
@click.argument("backup_log")
@click.option("--new-site", help="Restore into this new site (a staging clone) instead of the same site")
@click.option(
	"--from-destination", "destination", help="Download from this Backup Destination instead of local files"
)
@click.option(
	"--format", "output_format", type=click.Choice(["text", "json", "sh"]), default="text", show_default=True
)
@click.option("--production", is_flag=True, help="Add the nginx/supervisor restart step")
@click.option(
	"--enable-scheduler", is_flag=True, help="New site: enable its scheduler (a replacement, not a copy)"
)
@pass_context
def restore_plan(context, backup_log, new_site, destination, output_format, production, enable_scheduler):
	"""Print the exact commands that restore a backup; --format sh is a script that runs as-is."""
	from backup_manager.restore import build_plan_for_log, render_plan

	with connected_site(context):
		log = get_log_or_fail(backup_log)
		plan = build_plan_for_log(
			log,
			new_site=new_site,
			destination=destination,
			production=production,
			enable_scheduler=enable_scheduler,
		)
		click.echo(render_plan(plan, output_format), nl=False)


@backup_manager.command("restore-and-migrate")
@click.argument("dump")
@click.option(
	"--site-config",
	"site_config",
	help="The backup's site_config_backup.json: its encryption_key is carried before the migrate",
)
@click.option("--db-root-username", help="Database root user (default: root, or root_login in the config)")
@click.option("--force", is_flag=True, help="Restore a backup of a newer Frappe (bench restore --force)")
@pass_context
def restore_and_migrate(context, dump, site_config, db_root_username, force):
	"""The restore plan's same-site step: bench restore DUMP, the key carried, bench migrate, in one process.

	The database root password comes from the site or common config, else from $DB_ROOT_PASSWORD.
	"""
	from backup_manager.site_restore import (
		SiteRestoreError,
		carry_site_keys,
		migrate_site,
		restore_database,
	)

	site = get_site(context)
	try:
		click.secho(f"Restoring the database of {site} (bench restore)", fg="green")
		restore_database(site=site, dump=dump, db_root_username=db_root_username, force=force)
		if site_config:
			click.secho("Carrying the original site's encryption key", fg="green")
			click.echo(carry_site_keys(site=site, backup_config_path=site_config), nl=False)
		migrate_site()
	except SiteRestoreError as exc:
		fail(str(exc))


@backup_manager.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def status(as_json):
	"""Every site of this bench: its policies, last status, age of the last success, next run (no --site)."""
	from frappe.utils import get_sites

	from backup_manager.core.progress import format_duration

	report = []
	for site in sorted(get_sites()):
		report.append(read_site_status(site))
	if as_json:
		click.echo(json.dumps(report, default=str, indent=1))
		return
	rows = [("SITE", "POLICY", "ENABLED", "LAST STATUS", "LAST SUCCESS", "NEXT RUN", "HEALTH")]
	for entry in report:
		if entry.get("error"):
			rows.append((entry["site"], "-", "-", "-", "-", "-", entry["error"]))
			continue
		for policy in entry["policies"]:
			age = policy["last_success_age_seconds"]
			rows.append(
				(
					entry["site"],
					policy["policy"],
					"yes" if policy["enabled"] else "no",
					policy["last_status"] or "never run",
					f"{format_duration(age)} ago" if age is not None else "never",
					policy["next_run_at"] or "-",
					"ok" if policy["healthy"] else f"ALERT: {policy['reason']}",
				)
			)
	widths = [max(len(str(row[index])) for row in rows) for index in range(len(rows[0]))]
	for row in rows:
		click.echo(
			"  ".join(str(value).ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
		)
	for entry in report:
		for problem in entry.get("problems", []):
			click.secho(f"{entry['site']}: {problem['message']} Fix: {problem['fix']}", fg="red", err=True)


def read_site_status(site: str) -> dict:
	"""One site's health for `status`: its policies, or why it could not be read."""
	import frappe

	try:
		frappe.init(site=site)
		frappe.connect()
	except Exception as exc:
		frappe.destroy()
		return {"site": site, "error": f"cannot connect: {exc}"}
	try:
		if "backup_manager" not in frappe.get_installed_apps():
			return {"site": site, "error": "Backup Manager is not installed", "policies": []}
		from backup_manager.health import get_site_health, to_iso

		site_health = get_site_health()
		return {
			"site": site,
			"healthy": site_health.healthy,
			"policies": [policy.as_dict(to_iso) for policy in site_health.policies],
			"problems": [problem.as_dict() for problem in site_health.problems],
		}
	except Exception as exc:
		return {"site": site, "error": f"cannot read: {exc}", "policies": []}
	finally:
		frappe.destroy()


@backup_manager.command("drill")
@click.argument("backup_log")
@click.option(
	"--from-destination",
	"destination",
	help="Restore from this Backup Destination (default: the local files, else the policy's drill destination)",
)
@pass_context
def drill(context, backup_log, destination):
	"""Restore a backup into a throwaway site, check it and drop it; exits non-zero unless it passes."""
	from backup_manager.drills import execute_drill, start_drill

	with connected_site(context):
		get_log_or_fail(backup_log)
		started = start_drill(
			backup_log=backup_log, trigger="CLI", destination=destination, prefer_local=True, enqueue=False
		)
		if started.status != "Queued":
			fail(
				f"Restore drill {started.name} of {backup_log} is already {started.status}: wait for it to finish."
			)
		click.echo(
			f"Restore drill {started.name} of {backup_log} from {started.source}: restoring into a throwaway site..."
		)
		result = execute_drill(started)
		for check in result.checks:
			colour = {"Passed": "green", "Failed": "red"}.get(check.result, "yellow")
			click.secho(f"{check.result.upper():7}\t{check.check}\t{check.detail or ''}", fg=colour)
		duration = f"{result.duration:.0f} s" if result.duration else ""
		click.secho(
			f"{result.name}\t{result.status}\t{duration}", fg="green" if result.status == "Passed" else "red"
		)
		if result.status != "Passed":
			fail(f"Restore drill {result.status}: {result.error_message or ''}")


commands = [backup_manager]

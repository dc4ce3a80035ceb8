frappe.ui.form.on("Backup Policy", {
	refresh(frm) {
		if (frm.is_new()) return;
		frm.add_custom_button(__("Backup Now"), () => {
			frappe
				.call({
					method: "backup_manager.api.backup_now",
					args: { policy: frm.doc.name },
				})
				.then((r) => {
					frappe.show_alert({
						message: __("Backup queued: {0}", [frappe.utils.escape_html(r.message)]),
						indicator: "green",
					});
					frm.reload_doc();
				});
		});
		frm.add_custom_button(__("Preview Retention"), () => {
			frappe
				.call({
					method: "backup_manager.api.preview_retention",
					args: { policy: frm.doc.name },
				})
				.then((r) => show_retention_preview(r.message || []));
		});
		frm.add_custom_button(__("Backup Logs"), () =>
			frappe.set_route("List", "Backup Log", { policy: frm.doc.name })
		);
		if (frm.doc.last_status) {
			const colours = {
				Success: "green",
				Failed: "red",
				Partial: "orange",
				Running: "blue",
			};
			frm.dashboard.set_headline_alert(
				__("Last run: {0}. Next run: {1}", [
					__(frm.doc.last_status),
					frm.doc.next_run_at
						? frappe.datetime.str_to_user(frm.doc.next_run_at)
						: __("not scheduled"),
				]),
				colours[frm.doc.last_status] || "gray"
			);
		}
		show_watchdog_banner(frm);
	},
});

// The watchdog's problems (scheduler off, no long-queue worker, stuck runs, disk nearly full),
// each with its fix, in red above the form.
function show_watchdog_banner(frm) {
	frappe.call({ method: "backup_manager.api.get_watchdog_problems" }).then((r) => {
		const problems = r.message || [];
		frm.set_intro("");
		if (!problems.length) return;
		const esc = frappe.utils.escape_html;
		const items = problems
			.map(
				(problem) =>
					`<li class="bm-watchdog-problem" data-check="${esc(problem.check)}"><b>${esc(
						problem.message
					)}</b><br>${__("Fix")}: ${esc(problem.fix)}</li>`
			)
			.join("");
		frm.set_intro(
			`<div class="bm-watchdog-banner"><b>${__(
				"Backups will not run as scheduled:"
			)}</b><ul>${items}</ul></div>`,
			"red"
		);
	});
}

function show_retention_preview(verdicts) {
	if (!verdicts.length) {
		frappe.msgprint(__("No local backups of this policy yet."));
		return;
	}
	const rows = verdicts.map(
		(verdict) => `<tr>
			<td><a href="/app/backup-log/${encodeURIComponent(verdict.backup_log)}">${frappe.utils.escape_html(
				verdict.backup_log
			)}</a></td>
			<td>${frappe.datetime.str_to_user(verdict.created_at)}</td>
			<td>${verdict.keep ? __("Keep") : __("Prune")}</td>
			<td>${frappe.utils.escape_html(verdict.reason)}</td>
		</tr>`
	);
	frappe.msgprint({
		title: __("Retention preview (nothing is deleted)"),
		wide: true,
		message: `<table class="table table-bordered"><thead><tr><th>${__(
			"Backup Log"
		)}</th><th>${__("Taken")}</th><th>${__("Verdict")}</th><th>${__(
			"Reason"
		)}</th></tr></thead><tbody>${rows.join("")}</tbody></table>`,
	});
}

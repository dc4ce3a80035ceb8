const BM_ACTIVE_STATUSES = ["Queued", "Waiting for a slot", "Running", "Uploading"];

frappe.ui.form.on("Backup Log", {
	setup(frm) {
		// Live progress: the run publishes backup_manager_progress to this document's room.
		frappe.realtime.on("backup_manager_progress", (data) => {
			if (!data || data.backup_log !== frm.doc.name) return;
			show_progress(frm, data);
			if (data.phase === "done") setTimeout(() => frm.reload_doc(), 500);
		});
	},
	onload(frm) {
		frappe.realtime.doc_subscribe("Backup Log", frm.doc.name);
	},
	refresh(frm) {
		frm.disable_save();
		if (BM_ACTIVE_STATUSES.includes(frm.doc.status)) {
			frappe
				.call({
					method: "backup_manager.api.get_run_progress",
					args: { backup_log: frm.doc.name },
				})
				.then((r) => r.message && r.message.phase !== "done" && show_progress(frm, r.message));
		}
		if (frm.doc.status === "Success" || frm.doc.status === "Partial") {
			frm.add_custom_button(__("Restore Guide"), () => {
				frappe.set_route("backup-restore-guide", { backup_log: frm.doc.name });
			});
			frm.add_custom_button(__("Run Restore Drill"), () => {
				frappe
					.call({
						method: "backup_manager.api.run_restore_drill",
						args: { backup_log: frm.doc.name },
					})
					.then((r) => {
						frappe.show_alert({
							message: __("Restore drill {0} queued", [r.message]),
							indicator: "blue",
						});
						frappe.set_route("Form", "Backup Restore Drill", r.message);
					});
			});
			frm.add_custom_button(__("Verify Local Files"), () => {
				frappe
					.call({
						method: "backup_manager.api.verify_backup",
						args: { backup_log: frm.doc.name },
					})
					.then((r) => show_verification(r.message || []));
			});
		}
		if (
			["Partial", "Failed"].includes(frm.doc.status) &&
			frm.doc.manifest &&
			!frm.doc.local_files_deleted
		) {
			frm.add_custom_button(__("Retry Upload"), () => {
				frappe
					.call({
						method: "backup_manager.api.retry_upload",
						args: { backup_log: frm.doc.name },
					})
					.then(() => {
						frappe.show_alert({
							message: __("Upload retry queued"),
							indicator: "blue",
						});
						frm.reload_doc();
					});
			});
		}
		if (frm.doc.restore_verified) {
			frm.dashboard.set_headline_alert(
				__("Restore verified on {0}", [frappe.datetime.str_to_user(frm.doc.restore_verified_at)]),
				"green"
			);
		}
		if (frm.doc.policy) {
			frm.add_custom_button(__("Policy"), () =>
				frappe.set_route("Form", "Backup Policy", frm.doc.policy)
			);
		}
	},
	keep_forever(frm) {
		frappe.db
			.set_value("Backup Log", frm.doc.name, "keep_forever", frm.doc.keep_forever)
			.then(() => frm.reload_doc());
	},
});

function show_verification(checks) {
	const esc = frappe.utils.escape_html;
	const rows = checks.map(
		(check) =>
			`<tr><td>${esc(check.kind)}</td><td>${esc(check.file_name)}</td><td>${
				check.ok ? "✔" : "✘"
			}</td><td>${esc(check.message)}</td></tr>`
	);
	frappe.msgprint({
		title: __("Verification"),
		indicator: checks.every((check) => check.ok) ? "green" : "red",
		message: `<table class="table table-bordered">${rows.join("")}</table>`,
	});
}

function show_progress(frm, data) {
	const size = (bytes) => frappe.form.formatters.Float(bytes / 1048576, { precision: 1 }) + " MiB";
	let message = data.total_bytes
		? __("{0} of {1}", [size(data.done_bytes), size(data.total_bytes)])
		: size(data.done_bytes);
	if (data.eta_seconds != null) {
		message += " · " + __("about {0} left", [format_eta(data.eta_seconds)]);
	}
	const percent = data.percent == null ? 0 : data.percent;
	frm.dashboard.show_progress(__("Phase: {0}", [__(data.label)]), percent, message);
	frm.dashboard.wrapper.attr("data-bm-phase", data.phase);
}

function format_eta(seconds) {
	seconds = Math.round(seconds);
	const minutes = Math.floor(seconds / 60);
	return minutes ? __("{0} min {1} s", [minutes, seconds % 60]) : __("{0} s", [seconds]);
}

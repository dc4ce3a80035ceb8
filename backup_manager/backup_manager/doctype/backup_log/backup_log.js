frappe.ui.form.on("Backup Log", {
	refresh(frm) {
		frm.disable_save();
		if (frm.doc.status === "Success" || frm.doc.status === "Partial") {
			frm.add_custom_button(__("Restore Guide"), () => {
				frappe.set_route("backup-restore-guide", { backup_log: frm.doc.name });
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

frappe.ui.form.on("Backup Destination", {
	refresh(frm) {
		if (frm.is_new()) return;
		frm.add_custom_button(__("Test Connection"), () => {
			frappe
				.call({
					method: "backup_manager.api.test_destination_connection",
					args: { destination: frm.doc.name },
					// The bucket is user input and the freeze message is HTML.
					freeze: true,
					freeze_message: __("Testing {0}…", [
						frappe.utils.escape_html(frm.doc.bucket || frm.doc.name),
					]),
				})
				.then((r) => {
					show_connection_report(r.message);
					frm.reload_doc();
				});
		});
	},
});

function show_connection_report(report) {
	const esc = frappe.utils.escape_html;
	const rows = report.checks.map(
		(check) =>
			`<tr><td>${check.ok ? "✔" : "✘"}</td><td>${esc(check.name)}</td><td>${esc(
				check.message
			)}</td></tr>`
	);
	frappe.msgprint({
		title: report.ok ? __("Connection works") : __("Connection failed"),
		indicator: report.ok ? "green" : "red",
		message: `<table class="table table-bordered">${rows.join("")}</table>`,
	});
}

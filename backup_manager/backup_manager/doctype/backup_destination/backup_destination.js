frappe.ui.form.on("Backup Destination", {
	refresh(frm) {
		if (frm.is_new()) return;
		frm.add_custom_button(__("Test Connection"), () => {
			frappe.dom.freeze(__("Testing {0}…", [frm.doc.bucket]));
			frm.call("test_connection")
				.then((r) => {
					const report = r.message;
					const rows = report.checks.map(
						(check) =>
							`<tr><td>${check.ok ? "✔" : "✘"}</td><td>${frappe.utils.escape_html(
								check.name
							)}</td><td>${frappe.utils.escape_html(check.message)}</td></tr>`
					);
					frappe.msgprint({
						title: report.ok ? __("Connection works") : __("Connection failed"),
						indicator: report.ok ? "green" : "red",
						message: `<table class="table table-bordered">${rows.join("")}</table>`,
					});
					frm.reload_doc();
				})
				.always(() => frappe.dom.unfreeze());
		});
	},
});

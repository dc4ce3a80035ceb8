frappe.ui.form.on("Backup Destination", {
	refresh(frm) {
		if (frm.is_new()) return;
		frm.add_custom_button(__("Test Connection"), () => test_connection(frm));
	},
});

function test_connection(frm) {
	const esc = frappe.utils.escape_html;
	frappe
		.call({
			method: "backup_manager.api.test_destination_connection",
			args: { destination: frm.doc.name },
			// The bucket, host and folder are user input and the freeze message is HTML.
			freeze: true,
			freeze_message: __("Testing {0}…", [
				esc(frm.doc.bucket || frm.doc.sftp_host || frm.doc.folder_path || frm.doc.name),
			]),
		})
		.then((r) => {
			const report = r.message;
			frm.reload_doc();
			if (report.host_key_to_accept) {
				ask_to_accept_host_key(frm, report);
				return;
			}
			show_connection_report(report);
		});
}

function ask_to_accept_host_key(frm, report) {
	const esc = frappe.utils.escape_html;
	const changed = !!frm.doc.host_key_fingerprint;
	const message = changed
		? __(
				"The host key of {0} has CHANGED. It now offers {1}; the accepted key was {2}. Accept the new key only if the server's administrator confirms that it was reinstalled: otherwise someone may be intercepting the connection.",
				[
					esc(frm.doc.sftp_host),
					`<code>${esc(report.host_key_to_accept)}</code>`,
					`<code>${esc(frm.doc.host_key_fingerprint)}</code>`,
				]
		  )
		: __(
				"{0} offers the host key {1}. Compare it with the server's (on the server: {2}) and accept it only if they match.",
				[
					esc(frm.doc.sftp_host),
					`<code>${esc(report.host_key_to_accept)}</code>`,
					"<code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code>",
				]
		  );
	frappe.confirm(message, () => {
		frappe
			.call({
				method: "backup_manager.api.accept_destination_host_key",
				args: { destination: frm.doc.name, fingerprint: report.host_key_to_accept },
				freeze: true,
			})
			.then(() => {
				frm.reload_doc();
				test_connection(frm);
			});
	});
}

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

frappe.ui.form.on("Backup Monitor Token", {
	refresh(frm) {
		if (frm.is_new()) return;
		const label = frm.doc.token_hint ? __("Generate New Token") : __("Generate Token");
		frm.add_custom_button(label, () => {
			const go = () =>
				frappe
					.call({
						method: "backup_manager.api.generate_monitor_token",
						args: { name: frm.doc.name },
					})
					.then((r) => {
						show_token_once(r.message);
						frm.reload_doc();
					});
			if (frm.doc.token_hint) {
				frappe.confirm(
					__("The current token of {0} stops working at once. Generate a new one?", [
						frm.doc.label,
					]),
					go
				);
			} else {
				go();
			}
		});
	},
});

function show_token_once(token) {
	const url = `${frappe.urllib.get_base_url()}/api/method/backup_manager.api.health`;
	const esc = frappe.utils.escape_html;
	frappe.msgprint({
		title: __("Monitor Token"),
		indicator: "green",
		message: `<p>${__(
			"Copy it now: it is stored only as a hash and cannot be shown again."
		)}</p><pre class="bm-monitor-token">${esc(token)}</pre><p>${__(
			"Send it as the X-Backup-Manager-Token header:"
		)}</p><pre>curl -H "X-Backup-Manager-Token: ${esc(token)}" ${esc(url)}</pre>`,
	});
}

frappe.listview_settings["Backup Restore Drill"] = {
	get_indicator(doc) {
		const colours = {
			Queued: "gray",
			Running: "blue",
			Passed: "green",
			Failed: "red",
			Refused: "orange",
		};
		return [__(doc.status), colours[doc.status] || "gray", "status,=," + doc.status];
	},
};

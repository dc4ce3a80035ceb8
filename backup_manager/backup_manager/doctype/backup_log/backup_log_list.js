const BACKUP_LOG_COLOURS = {
	Queued: "gray",
	"Waiting for a slot": "yellow",
	Running: "blue",
	Uploading: "blue",
	Success: "green",
	Partial: "orange",
	Failed: "red",
	Skipped: "darkgrey",
};

frappe.listview_settings["Backup Log"] = {
	add_fields: ["status", "total_size_human", "keep_forever"],
	has_indicator_for_draft: true,
	get_indicator(doc) {
		const colour = BACKUP_LOG_COLOURS[doc.status] || "gray";
		return [__(doc.status), colour, `status,=,${doc.status}`];
	},
};

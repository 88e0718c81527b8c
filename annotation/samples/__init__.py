"""The samples page's bulk actions (send to review, mark gold, exclude from / include in snapshots) on a selection
or on every sample matching the page's filter: small ones inline, larger ones as a background job. The list
and its filters are the core's (synthstudio.views.sample_list, synthstudio.sample_search); the actions live here
because routing and gold items do."""

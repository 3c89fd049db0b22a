// Package dashboarde2e holds the dashboard's end-to-end test: a headless Chromium
// (chromedp) clicks through the dashboard that package
// github.com/conveyor-jobs/conveyor/dashboard serves over a seeded Redis. It lives in the
// command's module so that the browser driver stays out of the module applications
// import; it seeds Redis through internal/dashboardtest, as the dashboard package's own
// tests do.
package dashboarde2e
